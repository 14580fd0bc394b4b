"""Howdah's worker: ``python -m tasks.worker`` (see ``cli``), built on Procrastinate's App,
tables and SQL functions, with a loop of its own that outlives the database (``runner``).

``main`` and ``parse_args`` load on first use: the health check
(``python -m tasks.worker.healthcheck``), which a container runs every few seconds,
needs none of the App and its tasks.
"""

__all__ = ["main", "parse_args"]


def __getattr__(name: str):
    if name in __all__:
        from tasks.worker import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
