"""Diagnostic tasks for checking a deployment end to end."""

import logging

import procrastinate

log = logging.getLogger(__name__)

bp = procrastinate.Blueprint()


@bp.task(name="noop", queue="default", pass_context=True)
def noop(context: procrastinate.JobContext) -> None:
    """Do nothing; proves that a job goes from the API through a worker."""
    log.info("noop job %s ran", context.job.id, extra={"action": "noop"})
