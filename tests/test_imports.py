"""One clean import graph: every module imports on its own, and the worker loads nothing
of the web stack."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_ONLY = ("flask", "flask_login", "flask_wtf", "wtforms", "webapp.factory", "webapp.views")


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
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("webapp", "tasks")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
print(failed)
"""


def test_every_module_imports_on_its_own():
    # Each with none of the project's modules loaded before it, so an import cycle shows
    # whichever module it starts from. (Libraries stay loaded: they take no part.)
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "{}"


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
