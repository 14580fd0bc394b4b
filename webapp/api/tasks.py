"""/api/v1/tasks: what a client may defer."""

import tasks.app  # a module reference: tasks and webapp import each other
from webapp.api import bp


@bp.get("/v1/tasks")
def list_tasks():
    """Every deferrable task with its queue, defaults and payload JSON Schema."""
    return {"tasks": [spec.describe() for _, spec in sorted(tasks.app.deferrable().items())]}
