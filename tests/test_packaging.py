"""The Procfile and .env.example agree with each other and the code (the images and
compose files: tests/test_deploy_files.py)."""

import re
from pathlib import Path

from honcho.environ import parse_procfile

from tests import processes

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    return parse_procfile((ROOT / "Procfile").read_text()).processes


def test_procfile_has_release_web_and_worker():
    assert procfile() == {
        "release": "flask --app webapp migrate",
        "web": 'gunicorn -c python:webapp.gunicorn_conf "webapp:create_app()"',
        "worker": "python -m tasks.worker",
    }


def test_tests_start_the_procfile_web_line():
    quoted = " ".join(processes.WEB_COMMAND).replace("webapp:create_app()", '"webapp:create_app()"')
    assert quoted == procfile()["web"]


SETTING_READS = (
    re.compile(r"""parse_\w+\(\s*(?:os\.)?environ,\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""environ\.get\(["']([A-Z][A-Z0-9_]+)["']"""),
)
POOL_SETTINGS = {f"{p}_POOL_{s}_SIZE" for p in ("WEB", "WORKER") for s in ("MIN", "MAX")}


def listed_in_env_example() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))


def test_env_example_lists_every_setting_the_code_reads():
    # Pool names are built from a prefix; DATABASE_URL is parse_database_url's default.
    read = POOL_SETTINGS | {"DATABASE_URL"}
    sources = [*ROOT.glob("webapp/**/*.py"), *ROOT.glob("tasks/**/*.py")]
    for path in sources:
        for pattern in SETTING_READS:
            read |= set(pattern.findall(path.read_text()))
    assert read - listed_in_env_example() == set()


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    assert {name for name in listed_in_env_example() if f"`{name}`" not in readme} == set()
