"""`python -m mosaicstack_telemetry_cli`: the same as `mosaic-telemetry`."""

import sys

from mosaicstack_telemetry_cli import main

sys.exit(main())
