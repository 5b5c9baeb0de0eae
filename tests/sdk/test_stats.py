"""`stats()` adds up: every event tracked is sent, rejected, evicted, spooled or still queued.

Hypothesis drives random runs (tracks, bad input, a server that accepts, fails or refuses,
flushes, with and without a spool, and a second client draining the spool) over
`mosaicstack_telemetry.testing.InMemoryTransport`, the SDK's real queue and delivery code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TelemetryStats
from mosaicstack_telemetry.testing import recording_client

from .conftest import make_event

STEP = st.one_of(
    st.tuples(st.just("track"), st.integers(min_value=1, max_value=30)),
    st.tuples(st.just("invalid"), st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("server"), st.sampled_from([None, 503, 400])),
    st.tuples(st.just("flush"), st.just(0)),
)


def _balanced(stats: TelemetryStats) -> bool:
    return (
        stats.tracked + stats.unspooled
        == stats.sent + stats.rejected + stats.evicted + stats.spooled + stats.queue_size
    )


def _run(steps: list[tuple[str, Any]], spool: Path | None) -> list[TelemetryStats]:
    # No retries: a failing server fails a flush at once (no backoff waits in the run).
    client, transport = recording_client(
        max_queue_size=20, batch_size=7, max_retries=0, spool_dir=spool
    )
    seen = []
    for kind, value in steps:
        if kind == "track":
            for _ in range(value):
                client.track(make_event())
        elif kind == "invalid":
            for _ in range(value):
                client.track("not an event")  # type: ignore[arg-type]
        elif kind == "server":
            transport.status = value
        else:
            client.flush(timeout=5)
            seen.append(client.stats())
    transport.status = None
    client.flush(timeout=5)
    seen.append(client.stats())
    assert seen[-1].sent == len(transport.events)
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=12), st.booleans())
def test_the_counters_add_up_after_every_flush(
    steps: list[tuple[str, Any]], with_spool: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        spool = Path(directory) if with_spool else None
        history = _run(steps, spool)
        for stats in history:
            assert _balanced(stats), stats
        tracked = sum(v for k, v in steps if k == "track")
        invalid = sum(v for k, v in steps if k == "invalid")
        assert history[-1].tracked == tracked
        assert history[-1].invalid == invalid
        # A later client with the same spool sends what is left there, and balances too.
        if spool is not None:
            later, transport = recording_client(spool_dir=spool)
            later.flush(timeout=5)
            after = later.stats()
            assert after.unspooled == after.sent == len(transport.events)
            assert after.unspooled == history[-1].spooled - history[-1].unspooled


def test_a_refusing_server_counts_rejected_and_failed_batches() -> None:
    client, transport = recording_client(batch_size=5, max_retries=0)
    for _ in range(5):
        client.track(make_event())
    transport.status = 503
    assert client.flush() == 5
    transport.status = 422
    assert client.flush() == 0
    stats = client.stats()
    assert (stats.failed_batches, stats.rejected, stats.sent) == (1, 5, 0)
