"""Howdah's background tasks and the worker that runs them."""
