"""Bare Procrastinate, for side-by-side comparisons: a no-op task, a sleep, no Howdah code."""

import asyncio
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


@app.task(name="bench:sleep", queue="default")
async def sleep(seconds: float, **kwargs) -> None:
    """Await ``seconds`` of simulated I/O."""
    await asyncio.sleep(seconds)
