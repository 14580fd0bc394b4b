"""Bare Procrastinate, for side-by-side comparisons: one no-op task, no Howdah code."""

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("DATABASE_URL", ""), min_size=1, max_size=10
    )
)


@app.task(name="bench:noop", queue="default")
async def noop(**kwargs) -> None:
    """Do nothing."""
