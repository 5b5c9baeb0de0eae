"""Hand events to the SDK's client, bounded in time, with the SDK's spool behind it.

Nothing here keeps events itself: the client sends what the spool holds first, then the events;
`stop()` spools what its shutdown budget could not send, and the next client started on the same
spool (the next `send`, `flush`, hook report or import) delivers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Eager, though the SDK imports it lazily: its import (~0.15 s) would otherwise come out of the
# delivery's time budget, inside the worker thread, and stretch `send` past its deadline.
import httpx  # noqa: F401

from mosaicstack_telemetry import TaskCompletionEvent, TelemetryClient, TelemetryConfig
from mosaicstack_telemetry_agents.settings import AgentSettings

__all__ = ["SPOOL_MAX_BYTES", "Delivered", "deliver", "make_config"]

# A month of heavy use is a few thousand events of ~1 KB: 64 MiB is ample and still bounded.
SPOOL_MAX_BYTES = 64 * 1024 * 1024
# The SDK's bound on a shutdown budget.
_MAX_BUDGET_SECONDS = 300.0


@dataclass(frozen=True)
class Delivered:
    """How a delivery ended: sent, spooled (kept for later), rejected (lost) and left over."""

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
    """The SDK config of a short-lived client: one budget, a queue for every event, the spool."""
    budget = min(max(timeout, 0.05), _MAX_BUDGET_SECONDS)
    return TelemetryConfig(
        server_url=settings.server_url,
        instance_id=settings.instance_id,
        request_timeout_seconds=budget,
        shutdown_timeout_seconds=budget,
        max_queue_size=max(queue_size, 1),
        # Sending is driven by stop(); the interval only matters for a long-lived client.
        submit_interval_seconds=3600.0,
        spool_dir=str(settings.spool_dir),
        spool_max_bytes=SPOOL_MAX_BYTES,
    )


def deliver(
    events: Sequence[TaskCompletionEvent], settings: AgentSettings, *, timeout: float
) -> Delivered:
    """Send the spool first, then `events`; spool what is left after about `timeout` seconds.

    Raises ValueError, before anything is sent, when the configuration cannot work (no server,
    no key): the SDK would drop the events, here they stay where they came from.
    """
    config = make_config(settings, timeout=timeout, queue_size=len(events))
    problems = config.validate()
    if problems:
        raise ValueError(
            "; ".join(problems) + " (set MOSAIC_TELEMETRY_SERVER_URL, MOSAIC_TELEMETRY_API_KEY "
            "and MOSAIC_TELEMETRY_INSTANCE_ID)"
        )
    # 0700: the SDK uses a spool only if nobody else may enter it (its files are sent as ours).
    settings.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = TelemetryClient(config)
    client.start()
    for event in events:
        client.track(event)
    client.stop()
    stats = client.stats()
    return Delivered(
        tracked=stats.tracked,
        sent=stats.sent,
        spooled=stats.spooled,
        rejected=stats.rejected + stats.invalid,
        left=stats.queue_size + stats.evicted,
    )
