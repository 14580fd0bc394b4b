"""/api/v1/tasks: what a client may defer."""

import tasks.app  # a module reference: tasks and webapp import each other
from webapp.api import bp, tenancy
from webapp.api.documents import TaskList, respond


@bp.get("/v1/tasks")
def list_tasks():
    """Every task the caller may defer, with its queue, defaults and payload JSON Schema."""
    specs = sorted(tasks.app.deferrable(tenancy.is_platform()).items())
    return respond(TaskList.model_validate({"tasks": [spec.describe() for _, spec in specs]}))
