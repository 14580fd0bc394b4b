"""Build the Flask app: settings, database pool, queue service, security, views, API."""

import os
from collections.abc import Mapping

import click
from flask import Flask

from webapp import (
    auth,
    cli,
    db,
    errors,
    health,
    logs,
    metrics,
    paths,
    queue,
    security,
    views,
    webhooks,
)
from webapp.admin import bp as admin_bp
from webapp.api import bp as api_bp
from webapp.config import web_settings


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from ``config`` (environment-style names) or, by default, ``os.environ``."""
    # A command run by the flask CLI (migrate, accounts, tokens) serves no sessions, so
    # it needs no SECRET_KEY; gunicorn's master checks it before serving.
    serving = click.get_current_context(silent=True) is None
    settings = web_settings(os.environ if config is None else config, serving=serving)
    app = Flask(__name__, template_folder=str(paths.top_level("templates")))
    # A path with a doubled slash is not found (404 in the site's shape), rather than
    # redirected to a URL built from the request's Host header.
    app.url_map.merge_slashes = False
    app.config.from_mapping(settings)
    logs.init_app(app)

    db.init_app(app)
    queue.QueueService(app)
    security.init_app(app)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    security.csrf.exempt(api_bp)  # the API checks CSRF itself, for signed-in browsers only
    app.register_blueprint(webhooks.bp)
    security.csrf.exempt(webhooks.bp)  # Telnyx signs its receipts; no browser posts them
    errors.init_app(app)
    cli.init_app(app)
    return app
