"""Where the top-level folders are: in the checkout, or bundled in an installed package.

The repository keeps ``templates/`` and ``migrations/`` at its top. A wheel carries
copies of them inside the package, in ``webapp/_bundled/`` (see setup.py), found
through importlib.resources. pip installs a package as plain files, so either way the
folder is a real directory that Jinja and the migration runner can read.
"""

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
BUNDLE = "_bundled"


def top_level(name: str) -> Path:
    """The folder ``name`` (``templates`` or ``migrations``) of this installation."""
    bundled = resources.files(__package__) / BUNDLE / name
    if bundled.is_dir():
        return Path(str(bundled))
    return CHECKOUT / name
