"""Run an SDK client in a child process, as a CLI or hook would: the scripts and their runner.

The child reads its config from the environment (MOSAIC_TELEMETRY_*), so the parent can point it
at a wire server or a refused port and at a spool directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import API_KEY, INSTANCE_ID

# Track N events (argv[1]) and stop: what the budget cannot send goes to the spool.
TRACK_AND_STOP = """
import sys, time
from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig(submit_interval_seconds=3600.0))
client.start()
for _ in range(int(sys.argv[1])):
    client.track(EventBuilder(client.config.instance_id).model("m").build())
print("ids-ok", flush=True)
client.stop()
print(client.stats(), flush=True)
"""

# Start and flush: what the spool holds is delivered; prints the stats.
START_AND_FLUSH = """
from mosaicstack_telemetry import TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig(submit_interval_seconds=3600.0))
client.start()
client.flush(timeout=20.0)
client.stop()
print(client.stats(), flush=True)
"""

# Track until the spool holds what the full queue evicted, say so, then wait to be killed.
TRACK_UNTIL_SPOOLED = """
import sys, time
from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig(max_queue_size=100, submit_interval_seconds=3600.0))
client.start()
total = int(sys.argv[1])

def wait_spooled(count):
    deadline = time.monotonic() + 20
    while client.stats().spooled < count and time.monotonic() < deadline:
        time.sleep(0.005)

for number in range(total):
    client.track(EventBuilder(client.config.instance_id).model("m").build())
    if number % 50 == 49:  # a steady producer, not one burst of 10x the queue
        wait_spooled(number + 1 - 150)
wait_spooled(total - 100)
stats = client.stats()
print(f"spooled={stats.spooled} queued={stats.queue_size} evicted={stats.evicted}", flush=True)
time.sleep(60)
"""


def child_env(url: str, spool: Path | None, *, timed: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a child: the SDK configured by MOSAIC_TELEMETRY_* variables.

    `timed`: the child's exit is measured, so coverage (which CI extends to children) is left
    out of it: saving its data at exit is not the SDK's time.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOSAIC_TELEMETRY_") and not (timed and k.startswith("COVERAGE_"))
    }
    env.update(
        MOSAIC_TELEMETRY_SERVER_URL=url,
        MOSAIC_TELEMETRY_API_KEY=API_KEY,
        MOSAIC_TELEMETRY_INSTANCE_ID=INSTANCE_ID,
        **extra,
    )
    if spool is not None:
        env["MOSAIC_TELEMETRY_SPOOL_DIR"] = str(spool)
    return env


def spawn(script: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start `script` in a fresh interpreter with `env`; stdout is readable as text."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
