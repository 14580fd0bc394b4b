"""The single Procrastinate App shared by the web and worker processes.

The worker opens the App with a pool built from ``DIRECT_DATABASE_URL`` (by default
``DATABASE_URL``; ``app.open_async(pool)``), and the web process defers through a
connector on its own pool (``webapp.queue``); opened on its own, as Procrastinate's CLI
does, the App connects to ``DIRECT_DATABASE_URL`` too.
"""

import os

import procrastinate

from tasks import bulk, diagnostics, digests, maintenance, registry, sms

BLUEPRINTS = {
    "sms": sms.bp,
    "email": digests.bp,
    "diagnostics": diagnostics.bp,
    "maintenance": maintenance.bp,
    "admin": bulk.bp,
}

app = procrastinate.App(
    # Procrastinate's own CLI (healthchecks, shell, defer, even a worker) opens the App on
    # its own, so it connects straight to PostgreSQL like our worker: DIRECT_DATABASE_URL,
    # else DATABASE_URL. Howdah's processes open it with their own pools.
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("DIRECT_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    ),
    import_paths=[
        "tasks.sms",
        "tasks.digests",
        "tasks.diagnostics",
        "tasks.maintenance",
        "tasks.bulk",
    ],
)
for namespace, blueprint in BLUEPRINTS.items():
    app.add_tasks_from(blueprint, namespace=namespace)


def spec(task_name: str) -> registry.TaskSpec | None:
    """The task a client names, if it may be deferred through the API (by anyone)."""
    return registry.spec_of(app.tasks.get(task_name))


def deferrable(platform: bool = True) -> dict[str, registry.TaskSpec]:
    """Tasks a client may defer through the API, by full name (``platform``: an admin's)."""
    return registry.deferrable(app, platform)
