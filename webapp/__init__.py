"""Howdah's web application: JSON API, health endpoints and pages.

Importing the package loads nothing of the web stack, so the worker and the tasks can
use its configuration and store modules alone; ``create_app`` (what gunicorn and
``flask --app webapp`` call) builds the app in ``webapp.factory``.
"""

from collections.abc import Mapping


def create_app(config: Mapping[str, str] | None = None):
    """Build the app from ``config`` (environment-style names) or, by default, ``os.environ``."""
    from webapp.factory import create_app as build

    return build(config)
