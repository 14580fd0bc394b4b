"""``flask migrate`` on a real PostgreSQL: fresh, repeated, concurrent and upgraded databases."""

import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from webapp import migrations

ROOT = migrations.PROJECT_DIR.parent


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def recorded(url: str) -> list[tuple[str, str]]:
    with connect(url) as conn:
        return conn.execute("SELECT source, name FROM schema_migrations ORDER BY 1, 2").fetchall()


def table_exists(url: str, name: str) -> bool:
    with connect(url) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


@pytest.fixture
def sources(tmp_path):
    """Copies of our and Procrastinate's migration folders that a test may add files to."""
    project = tmp_path / "project"
    package = tmp_path / "procrastinate"
    shutil.copytree(migrations.PROJECT_DIR, project)
    shutil.copytree(migrations.PROCRASTINATE_DIR, package, ignore=shutil.ignore_patterns("*.py*"))
    return migrations.Sources(project_dir=project, procrastinate_dir=package)


def run_migrate(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run the Procfile's release command as a real process, in production with no
    SECRET_KEY: a migration needs none."""
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webapp", "migrate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fresh_database_gets_procrastinate_schema_then_ours(empty_db_url):
    with connect(empty_db_url) as conn:
        applied = migrations.migrate(conn)

    ours = [f"howdah/{m.name}" for m in migrations.Sources().project()]
    assert applied == ["procrastinate/schema.sql", *ours]
    assert table_exists(empty_db_url, "procrastinate_jobs")
    assert table_exists(empty_db_url, "organizations")
    package_files = {m.name for m in migrations.Sources().procrastinate()}
    recorded_package = {
        name for source, name in recorded(empty_db_url) if source == "procrastinate"
    }
    assert recorded_package == package_files | {"schema.sql"}


def test_second_run_changes_nothing(empty_db_url):
    with connect(empty_db_url) as conn:
        migrations.migrate(conn)
        before = recorded(empty_db_url)
        assert migrations.migrate(conn) == []
        assert migrations.status(conn).pending == []
    assert recorded(empty_db_url) == before


def migrate_at_once(env: dict, runs: int) -> list[str]:
    """Start ``runs`` release commands together; wait for all; their outputs, each
    having succeeded."""
    command = [sys.executable, "-m", "flask", "--app", "webapp", "migrate"]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(runs)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * runs, outputs
    return outputs


def assert_applied_once_each(url: str, outputs: list[str]) -> None:
    """Every file was applied by exactly one of the runs, and recorded once."""
    ours = [m.name for m in migrations.Sources().project()]
    combined = "\n".join(outputs)
    assert combined.count("Installing Procrastinate") == 1
    for name in ours:
        assert combined.count(f"Applying howdah/{name}") == 1, name
    counts = [int(n) for n in re.findall(r"Applied (\d+) migration\(s\)\.", combined)]
    assert sum(counts) == 1 + len(ours)  # Procrastinate's schema, then ours
    assert len(counts) + combined.count("Nothing to migrate.") == len(outputs)
    package = [m.name for m in migrations.Sources().procrastinate()]
    expected = [("procrastinate", "schema.sql"), *(("procrastinate", n) for n in package)]
    assert recorded(url) == sorted([*expected, *(("howdah", name) for name in ours)])


def test_concurrent_runs_apply_each_file_once(empty_db_url):
    env = {"DATABASE_URL": empty_db_url, "HOWDAH_ENV": "development", "PATH": "/usr/bin:/bin"}
    # Runs may share the work file by file: each file's transaction takes the lock and
    # checks again whether another run applied it meanwhile.
    assert_applied_once_each(empty_db_url, migrate_at_once(env, 3))


WAITING = "Another migration run holds the lock; waiting for it to finish."


def test_a_run_that_waits_says_so_once_and_each_file_is_applied_by_one_run(empty_db_url):
    lines = {"first": [], "second": []}
    waiting = threading.Event()
    started = []

    def run(who: str) -> list[str]:
        with connect(empty_db_url) as conn:
            return migrations.migrate(conn, echo=lambda line: echo(who, line))

    def echo(who: str, line: str) -> None:
        lines[who].append(line)
        if who == "second" and line == WAITING:
            waiting.set()
        if who == "first" and not started:  # "Installing Procrastinate", inside the lock
            started.append(others.submit(run, "second"))
            assert waiting.wait(30), "the second run never waited for the lock"

    with ThreadPoolExecutor(1) as others:
        applied = run("first")
    applied += started[0].result()

    assert lines["first"][0].startswith("Installing Procrastinate")
    assert lines["second"].count(WAITING) == 1  # however many files it waited for
    ours = [f"howdah/{m.name}" for m in migrations.Sources().project()]
    assert sorted(applied) == sorted(["procrastinate/schema.sql", *ours])
    said = [line for line in lines["first"] + lines["second"] if line.startswith("Applying")]
    assert sorted(said) == sorted(f"Applying {name}" for name in ours)


def test_a_file_changed_after_it_was_applied_is_reported_not_applied_again(empty_db_url, sources):
    with connect(empty_db_url) as conn:
        migrations.migrate(conn, sources)
        # Replaced as a deploy replaces files (the folder's mtime tells the reader to look).
        changed = sources.project_dir / "0001_create_organizations.sql"
        edited = sources.project_dir.parent / "edited.sql"
        edited.write_text(changed.read_text() + "\n-- edited after the release\n")
        edited.replace(changed)
        assert migrations.status(conn, sources).modified == ["0001_create_organizations.sql"]
        assert migrations.migrate(conn, sources) == []


def test_pending_file_is_listed_then_applied_alone(empty_db_url, sources):
    with connect(empty_db_url) as conn:
        migrations.migrate(conn, sources)
        (sources.project_dir / "0999_add_widgets.sql").write_text(
            "-- a later release's migration\nCREATE TABLE widgets (id int PRIMARY KEY);\n"
        )
        assert migrations.pending_names(conn, sources) == ["howdah/0999_add_widgets.sql"]

        assert migrations.migrate(conn, sources) == ["howdah/0999_add_widgets.sql"]
        assert migrations.pending_names(conn, sources) == []
    assert table_exists(empty_db_url, "widgets")


def test_procrastinate_upgrade_applies_only_the_new_package_files(empty_db_url, sources):
    with connect(empty_db_url) as conn:
        migrations.migrate(conn, sources)
        # What a newer Procrastinate release would ship beside the files already applied.
        (sources.procrastinate_dir / "99.00.00_01_pre_add_marker.sql").write_text(
            "CREATE TABLE upgrade_marker (id int);"
        )
        assert migrations.migrate(conn, sources) == ["procrastinate/99.00.00_01_pre_add_marker.sql"]
    assert table_exists(empty_db_url, "upgrade_marker")


def test_failed_migration_is_rolled_back_and_not_recorded(empty_db_url, sources):
    (sources.project_dir / "0998_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with connect(empty_db_url) as conn:
        with pytest.raises(migrations.MigrationError, match=r"0998_broken\.sql failed"):
            migrations.migrate(conn, sources)
        assert not table_exists(empty_db_url, "half_done")
        assert ("howdah", "0998_broken.sql") not in recorded(empty_db_url)
        # The earlier files stay applied, and the lock was released.
        assert ("howdah", "0001_create_organizations.sql") in recorded(empty_db_url)
        with connect(empty_db_url) as other:
            assert other.execute(
                "SELECT pg_try_advisory_lock(%s)", (migrations.store.MIGRATION_LOCK_KEY,)
            ).fetchone()[0]


def test_badly_named_file_is_refused(empty_db_url, sources):
    (sources.project_dir / "add_things.sql").write_text("SELECT 1;")
    with connect(empty_db_url) as conn, pytest.raises(migrations.MigrationError, match="NNNN"):
        migrations.migrate(conn, sources)


def test_procrastinate_installed_elsewhere_is_refused(empty_db_url):
    with connect(empty_db_url) as conn:
        conn.execute(migrations.procrastinate_schema().sql)
        with pytest.raises(migrations.MigrationError, match="not installed by `flask migrate`"):
            migrations.migrate(conn)


def test_cli_status_lists_pending_then_applied(empty_db_url):
    expected = 1 + len(migrations.Sources().project())  # Procrastinate's schema, then ours
    before = run_migrate(empty_db_url, "--status")
    assert before.returncode == 0, before.stderr
    assert "pending" in before.stdout and "procrastinate/schema.sql" in before.stdout
    assert f"0 applied, {expected} pending." in before.stdout

    applied = run_migrate(empty_db_url)
    assert applied.returncode == 0, applied.stderr
    assert f"Applied {expected} migration(s)." in applied.stderr  # a log line

    after = run_migrate(empty_db_url, "--status")
    assert re.search(r"^applied .* howdah/0001_create_organizations\.sql$", after.stdout, re.M)
    assert ", 0 pending." in after.stdout


def test_cli_reports_an_unreachable_database_in_one_line():
    result = run_migrate("postgresql://postgres@127.0.0.1:1/nowhere")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot connect to DATABASE_URL" in result.stderr


def test_cli_without_database_url_names_the_variable():
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webapp", "migrate"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("howdah: configuration error: DATABASE_URL is required")
    )


ALTERS_PROCRASTINATE = re.compile(
    r"\b(ALTER|DROP|COMMENT\s+ON|CREATE\s+OR\s+REPLACE)\b[^;]*?\bprocrastinate_", re.I | re.S
)


@pytest.mark.parametrize("migration", migrations.Sources().project(), ids=lambda m: m.name)
def test_our_migrations_never_alter_procrastinate_objects(migration):
    assert not ALTERS_PROCRASTINATE.search(migration.sql)
    assert migration.sql.lstrip().startswith("--"), "each migration opens with a comment on why"


@pytest.mark.parametrize(
    ("command", "shows"),
    [
        (["-m", "flask", "--app", "webapp", "--help"], "migrate"),
        (["-m", "tasks.worker", "--help"], "--concurrency"),
    ],
)
def test_help_needs_no_database_url(command, shows):
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert shows in result.stdout
