"""``make run``: the whole service on one machine, with honcho.

Without DATABASE_URL it starts an embedded PostgreSQL whose data lives in
HOWDAH_DATA_DIR (``var/`` in the checkout). It then applies migrations and runs the Procfile's
``web`` and ``worker`` processes. Ctrl-C or SIGTERM stops them all, and the
embedded server with them. It needs the ``dev`` extra, which ``make run`` installs.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from webapp.config import DevExtraMissing
from webapp.embedded import EmbeddedPostgres, EmbeddedServerError
from webapp.store import accounts as accounts_store

try:
    import dotenv
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
except ModuleNotFoundError as missing:
    raise DevExtraMissing(missing) from None

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("web", "worker")
DEMO_ORG = "Demo"
DEMO_ADMIN = "admin@example.com"


class Stopped(Exception):
    """A stop signal arrived before the processes were running."""


def _stop(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def development_secret(data_dir: Path) -> str:
    """A per-checkout SECRET_KEY kept in the data folder, so sessions survive restarts."""
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def build_env(data_dir: Path) -> dict:
    """The processes' environment: .env and the shell, plus development defaults."""
    env = {**dotenv.dotenv_values(ROOT / ".env"), **os.environ}
    env = {k: v for k, v in env.items() if v is not None}
    env.setdefault("HOWDAH_ENV", "development")
    env.setdefault("PORT", "8000")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = development_secret(data_dir)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def flask(env: dict, *args: str, stdin: str | None = None) -> str:
    """Run a ``flask --app webapp`` command; return what it printed."""
    return subprocess.run(  # noqa: S603 - our own flask commands, fixed arguments
        [sys.executable, "-m", "flask", "--app", "webapp", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout


def bootstrap_demo(env: dict) -> str | None:
    """On a database without users, create a demo organization, an admin and a token.

    Returns what to tell the person once; the password and token are not kept anywhere.
    """
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        if accounts_store.count_users(conn):
            return None
    password = secrets.token_urlsafe(12)
    flask(env, "orgs", "create", DEMO_ORG)
    flask(
        env,
        "users",
        "create",
        "--email",
        DEMO_ADMIN,
        "--org",
        DEMO_ORG,
        "--role",
        "admin",
        "--password-stdin",
        stdin=password + "\n",
    )
    token = flask(env, "tokens", "create", "--org", DEMO_ORG, "--name", "demo").split()[-1]
    base = f"http://127.0.0.1:{env['PORT']}"
    return (
        f"First run: created organization {DEMO_ORG!r}, an admin and an API token.\n"
        f"  Sign in at {base}/login as {DEMO_ADMIN} with password {password}\n"
        f"  API token for {DEMO_ORG} (shown once): {token}\n"
        f"  curl -H 'Authorization: Bearer {token}' {base}/api/v1/jobs\n"
    )


def run_processes(env: dict) -> int:
    """Migrate, then run web and worker under honcho until one stops or a signal comes."""
    print(flask(env, "migrate"), end="", flush=True)
    welcome = bootstrap_demo(env)
    procfile = parse_procfile((ROOT / "Procfile").read_text())
    manager = Manager()
    for name in SERVICES:
        manager.add_process(name, procfile.processes[name], env=env, cwd=str(ROOT))
    print(f"\nHowdah is running at http://127.0.0.1:{env['PORT']}/  (Ctrl-C to stop)", flush=True)
    print(welcome or "", flush=True)
    manager.loop()  # installs its own SIGINT/SIGTERM handlers
    return manager.returncode or 0


def main() -> int:
    """Start the database if needed, run everything, and always stop what we started."""
    if not (ROOT / "Procfile").is_file():
        print(
            "howdah: make run needs a checkout of the repository (it runs its Procfile);"
            " an installed Howdah runs its processes itself, as the README says",
            file=sys.stderr,
        )
        return 1
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    data_dir = Path(os.environ.get("HOWDAH_DATA_DIR") or ROOT / "var").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = build_env(data_dir)
    database = None
    try:
        if not env.get("DATABASE_URL"):
            print(f"Starting the embedded PostgreSQL (data in {data_dir / 'pgdata'})", flush=True)
            database = EmbeddedPostgres(data_dir / "pgdata")
            database.start()
            env["DATABASE_URL"] = database.ensure_database("howdah")
        return run_processes(env)
    except Stopped as stop:
        print(f"{stop} received, stopping", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"howdah: `{' '.join(exc.cmd[2:])}` failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    except EmbeddedServerError as exc:
        print(f"howdah: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if database is not None:
            print("Stopping the embedded PostgreSQL", flush=True)
            database.stop()


if __name__ == "__main__":
    sys.exit(main())
