"""Hand events to the SDK's client, bounded in time, with the SDK's spool behind it.

Nothing here keeps events itself: the SDK's spool (`spool_dir`) holds what could not be sent
within the budget, and the next client started on the same spool sends it first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mosaicstack_telemetry import TaskCompletionEvent, TelemetryClient, TelemetryConfig
from mosaicstack_telemetry_agents.settings import AgentSettings

__all__ = ["SPOOL_MAX_BYTES", "Delivered", "deliver", "make_config"]

# A month of heavy use is a few thousand events of ~1 KB: 64 MiB is ample and still bounded.
SPOOL_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Delivered:
    """How a delivery ended: sent, spooled (kept for later) and rejected/invalid (lost)."""

    tracked: int
    sent: int
    spooled: int
    rejected: int
    left: int

    @property
    def complete(self) -> bool:
        """Every event was sent or safely spooled, none rejected."""
        return self.rejected == 0 and self.left == 0


def make_config(settings: AgentSettings, *, timeout: float, queue_size: int) -> TelemetryConfig:
    """The SDK config of a short-lived client: small timeouts, a queue for every event."""
    options: dict[str, object] = {
        "server_url": settings.server_url,
        "instance_id": settings.instance_id,
        "request_timeout_seconds": timeout,
        "max_queue_size": max(queue_size, 1),
        "max_retries": 1,
        # Submitting is driven by flush(); the interval only matters if it is never called.
        "submit_interval_seconds": 3600.0,
    }
    spool = {
        "spool_dir": str(settings.spool_dir),
        "spool_max_bytes": SPOOL_MAX_BYTES,
        "shutdown_timeout_seconds": timeout,
    }
    known = {field.name for field in dataclasses.fields(TelemetryConfig)}
    options.update({name: value for name, value in spool.items() if name in known})
    return TelemetryConfig(**options)  # type: ignore[arg-type]


def deliver(
    events: Sequence[TaskCompletionEvent], settings: AgentSettings, *, timeout: float
) -> Delivered:
    """Send the spool first, then `events`; spool what is left after about `timeout` seconds."""
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    client = TelemetryClient(make_config(settings, timeout=timeout, queue_size=len(events)))
    client.start()
    for event in events:
        client.track(event)
    flush = getattr(client, "flush", None)
    if flush is not None:
        flush(timeout=timeout)
    client.stop()
    return _delivered(client, len(events))


def _delivered(client: TelemetryClient, tracked: int) -> Delivered:
    stats = getattr(client, "stats", None)
    if stats is None:  # an SDK without spool/stats: all we know is what is left in the queue
        left = client.queue_size
        return Delivered(tracked, tracked - left, 0, 0, left)
    figures = stats()
    return Delivered(
        tracked=figures.tracked,
        sent=figures.sent,
        spooled=figures.spooled,
        rejected=figures.rejected + figures.invalid,
        left=figures.queue_size + figures.evicted,
    )
