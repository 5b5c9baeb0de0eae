"""The drain process's entry point (`python -m ...predictions.drain_child`).

See `drain_process`: the order (database URL, parent process, chunk size) comes as JSON on
standard input.
"""

import sys

from mosaicstack_telemetry_server.predictions.drain_process import main

sys.exit(main())
