"""Howdah's worker: ``python -m tasks.worker`` (see ``cli``), built on Procrastinate's App,
tables and SQL functions, with a loop of its own that outlives the database (``runner``)."""

from tasks.worker.cli import main, parse_args

__all__ = ["main", "parse_args"]
