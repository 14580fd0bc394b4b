"""The one build step setup.cfg cannot declare: bundling the top-level folders.

The repository keeps ``templates/`` and ``migrations/`` at its top, where people look
for them; an installed package has no top. So the build copies them into the built
``webapp`` package, under ``webapp/_bundled/``, where ``webapp.paths`` finds them.
An editable install skips the copy and reads the checkout's own folders.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED_FOLDERS = ("templates", "migrations")
BUNDLE_DIR = Path("webapp", "_bundled")


def bundled_files() -> list[Path]:
    """The files to bundle, relative to the project (no caches, no hidden files)."""
    return sorted(
        path
        for folder in BUNDLED_FOLDERS
        for path in Path(folder).rglob("*")
        if path.is_file() and not any(part.startswith((".", "__")) for part in path.parts)
    )


class BuildPyWithBundle(build_py):
    """build_py, plus a copy of each bundled folder inside the webapp package."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        # An in-tree build reuses build/lib: drop the last copy, so a file deleted from
        # the checkout (a migration above all) cannot live on in the next wheel.
        shutil.rmtree(Path(self.build_lib, BUNDLE_DIR), ignore_errors=True)
        for source in bundled_files():
            target = Path(self.build_lib, BUNDLE_DIR, source)
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_source_files(self):
        # sdist packs what build_py reads, so an sdist builds the same wheel.
        return [*super().get_source_files(), *map(str, bundled_files())]


setup(cmdclass={"build_py": BuildPyWithBundle})
