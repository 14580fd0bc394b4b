"""Request bodies of the JSON API, validated with pydantic."""

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 1000


class JobRequest(BaseModel):
    """POST /api/v1/jobs, and each item of a batch."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=200, description="A name from GET /api/v1/tasks")
    payload: dict[str, Any] = Field(description="The task's payload; see its payload_schema")
    queue: str | None = Field(None, description="Override the task's default queue")
    priority: int | None = Field(
        None, ge=-1000, le=1000, strict=True, description="Higher runs first; default from the task"
    )
    run_at: AwareDatetime | None = Field(None, description="Run no earlier than this time")
    delay_seconds: float | None = Field(
        None, ge=0, le=366 * 86400, description="Run after this many seconds"
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="While a job with this key waits, another request with it answers 409",
    )

    @model_validator(mode="after")
    def one_schedule(self):
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give run_at or delay_seconds, not both")
        return self


class BatchRequest(BaseModel):
    """POST /api/v1/jobs/batch: the items are validated one by one, for errors by index."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
