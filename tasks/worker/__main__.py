import signal
import sys

# A stop requested while the worker is still loading is a clean exit; once it runs,
# the worker's own handlers take over (see tasks/worker/runner.py).
for _signal in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_signal, lambda *_: sys.exit(0))

from tasks.worker.cli import main  # noqa: E402 - after the handlers, on purpose

sys.exit(main())
