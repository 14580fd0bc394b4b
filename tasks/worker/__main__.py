import sys

from tasks.worker.cli import main

sys.exit(main())
