"""/api/v1/jobs: put jobs in, read them, cancel and retry them."""

import pydantic
from flask import current_app, request

from tasks import queues
from webapp import audit, db, monitoring, security
from webapp.api import bp, params, tenancy
from webapp.api.documents import (
    Accepted,
    Attempt,
    AttemptList,
    BatchAccepted,
    Job,
    JobPage,
    job_path,
    page_cursor,
    respond,
)
from webapp.api.schemas import MAX_TEXT, BatchRequest, JobRequest
from webapp.errors import api_error
from webapp.queue import (
    DuplicateJob,
    InvalidState,
    JobOptions,
    JobRejected,
    TaskNotAllowed,
    WrongOrganization,
    field_errors,
    get_queue,
    organization_of,
)
from webapp.store import attempts as attempts_store

DEFAULT_PAGE, MAX_PAGE = 50, 500
# Queues a listing may name: the client queues, and Howdah's own housekeeping.
LISTED_QUEUES = (*queues.ALL, queues.HOUSEKEEPING)


def json_object(limit_setting: str) -> dict:
    """The request's JSON object body, within the configured size limit."""
    if not request.is_json:
        api_error(415, "send a JSON body with Content-Type: application/json")
    data = security.read_body(current_app.config[limit_setting])  # too large: 413
    try:
        body = current_app.json.loads(data)
    except ValueError as exc:
        request.on_json_loading_failed(exc)  # malformed JSON: 400, as get_json() says it
    if not isinstance(body, dict):
        api_error(
            422,
            "the body must be a JSON object",
            errors=[{"field": "body", "message": "expected an object", "type": "type"}],
        )
    return body


def parse_job_request(body: dict, prefix: str = "") -> tuple[JobRequest | None, list[dict]]:
    try:
        return JobRequest.model_validate(body), []
    except pydantic.ValidationError as exc:
        return None, field_errors(exc, prefix)


def to_options(job: JobRequest) -> JobOptions:
    return JobOptions(
        queue=job.queue,
        priority=job.priority,
        run_at=job.run_at,
        delay_seconds=job.delay_seconds,
        idempotency_key=job.idempotency_key,
    )


def defer_or_fail(requests, organization_id):
    """Defer through the queue service, turning its refusals into API errors."""
    try:
        return get_queue().defer_many(requests, organization_id, tenancy.is_platform())
    except JobRejected as exc:
        api_error(422, "the job request is invalid", errors=exc.errors)
    except WrongOrganization as exc:
        api_error(403, str(exc))
    except TaskNotAllowed as exc:
        api_error(403, str(exc), **({} if exc.index is None else {"index": exc.index}))
    except DuplicateJob as exc:
        extra = (
            {"job_id": exc.job_id}
            if exc.index is None
            else {"job_id": exc.job_id, "index": exc.index}
        )
        api_error(409, "a job with this idempotency key is still waiting", **extra)


def get_job_or_404(job_id: int) -> dict:
    """The job, if it exists for the acting organization; 404 otherwise."""
    job = get_queue().get(job_id, tenancy.acting_organization())
    if job is None:
        api_error(404, f"no job {job_id}")
    return job


@bp.post("/v1/jobs")
def create_job():
    """Defer one job: 202 with its id and links."""
    job, errors = parse_job_request(json_object("API_MAX_BODY_BYTES"))
    if errors:
        api_error(422, "the job request is invalid", errors=errors)
    (deferred,) = defer_or_fail(
        [(job.task, job.payload, to_options(job))], tenancy.acting_organization()
    )
    return respond(Accepted.from_job(deferred), 202, {"Location": job_path(deferred.id)})


@bp.post("/v1/jobs/batch")
def create_jobs_batch():
    """Defer up to 1,000 jobs in one transaction: all of them, or none with errors by index."""
    try:
        batch = BatchRequest.model_validate(json_object("API_BATCH_MAX_BODY_BYTES"))
    except pydantic.ValidationError as exc:
        api_error(422, "the batch request is invalid", errors=field_errors(exc))
    parsed = [parse_job_request(item) for item in batch.jobs]
    errors = [{"index": i, **e} for i, (_, errs) in enumerate(parsed) for e in errs]
    if errors:
        api_error(422, "some jobs in the batch are invalid; none was deferred", errors=errors)
    deferred = defer_or_fail(
        [(j.task, j.payload, to_options(j)) for j, _ in parsed], tenancy.acting_organization()
    )
    return respond(
        BatchAccepted.model_construct(jobs=[Accepted.from_job(j) for j in deferred]), 202
    )


@bp.get("/v1/jobs/<id:job_id>")
def get_job(job_id: int):
    """A job's status, task, queue, attempts, times and last error."""
    return respond(Job.from_row(get_job_or_404(job_id)))


@bp.get("/v1/jobs/<id:job_id>/attempts")
def list_job_attempts(job_id: int):
    """Every recorded attempt of a job, with its error; the traceback (server paths,
    library versions) for platform admins only."""
    get_job_or_404(job_id)
    rows = attempts_store.list_attempts(db.get_conn(), job_id)
    hidden = {} if tenancy.is_platform() else {"traceback": None}
    attempts = [Attempt.model_construct(**{**row, **hidden}) for row in rows]
    return respond(AttemptList.model_construct(attempts=attempts))


@bp.get("/v1/jobs")
def list_jobs():
    """Jobs newest first, filtered by status, queue and task, with keyset pagination."""
    limit = params.int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    rows = get_queue().list_jobs(
        tenancy.acting_organization(),
        status=params.str_arg("status", MAX_TEXT, monitoring.JOB_STATUSES),
        queue=params.str_arg("queue", MAX_TEXT, LISTED_QUEUES),
        task=params.str_arg("task", MAX_TEXT),
        before_id=params.int_arg("cursor", None, 1, params.BIGINT_MAX),
        limit=limit + 1,
    )
    jobs = [Job.from_row(row) for row in rows[:limit]]
    return respond(JobPage.model_construct(jobs=jobs, next_cursor=page_cursor(rows, limit)))


@bp.post("/v1/jobs/<id:job_id>/cancel")
def cancel_job(job_id: int):
    """Cancel a waiting job (200), or request an abort of a running one (202)."""
    job = get_job_or_404(job_id)
    with db.get_conn().transaction():  # the change and its audit entry, or neither
        try:
            get_queue().cancel(job)
        except InvalidState as exc:
            api_error(409, str(exc), status=job["status"])
        after = get_job_or_404(job_id)  # a worker may have taken it meanwhile
        cancelled = after["status"] == "cancelled"
        audit.record(
            "job.cancel" if cancelled else "job.abort",
            target_type="job",
            target_id=job_id,
            organization_id=organization_of(job["args"]),
        )
    return respond(Job.from_row(after), 200 if cancelled else 202)


@bp.post("/v1/jobs/<id:job_id>/retry")
def retry_job(job_id: int):
    """Run a failed job again (202 with it), or a cancelled or aborted one as a new job
    (202 with the new job); a job that was retried as a new job before answers 409."""
    job = get_job_or_404(job_id)
    with db.get_conn().transaction():  # the change and its audit entry, or neither
        try:
            new_id = get_queue().retry(job, tenancy.is_platform())
        except InvalidState as exc:
            retried_as = get_job_or_404(job_id)["retried_as"]  # another retry may have won
            extra = {} if retried_as is None else {"retried_as": retried_as}
            api_error(409, str(exc), status=job["status"], **extra)
        except TaskNotAllowed as exc:
            api_error(403, str(exc))
        audit.record(
            "job.retry",
            target_type="job",
            target_id=job_id,
            organization_id=organization_of(job["args"]),
            details={"job_id": new_id} if new_id != job_id else None,
        )
        body = Job.from_row(get_job_or_404(new_id))
    return respond(body, 202, {"Location": job_path(new_id)})
