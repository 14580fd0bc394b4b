"""The single Procrastinate App shared by the web and worker processes.

Its connector is given no connection string here: each process opens the App
after it starts (and after any fork) with a pool built from ``DATABASE_URL``
(``app.open(pool)`` in the web, ``app.open_async(pool)`` in the worker).
"""

import procrastinate

from tasks import diagnostics

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=["tasks.diagnostics"],
)
app.add_tasks_from(diagnostics.bp, namespace="diagnostics")
