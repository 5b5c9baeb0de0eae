"""The disk spool: what the shutdown budget or a full queue cannot keep is sent by the next client.

Against the wire server on 127.0.0.1 and real files, in this process and in child processes
started as a CLI would start them (config from the environment).
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TelemetryClient
from mosaicstack_telemetry._spool import Spool
from mosaicstack_telemetry.stats import Tally

from ._child import START_AND_FLUSH, TRACK_AND_STOP, TRACK_UNTIL_SPOOLED, child_env, spawn
from ._wire_server import Answer, WireServer, accepted_answer
from .conftest import make_config, make_event, wait_until, warnings_of


def _files(spool: Path) -> list[str]:
    return sorted(os.listdir(spool)) if spool.exists() else []


def test_stop_with_the_server_down_spools_and_the_next_client_delivers_each_once(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool" / "nested"  # created (0700) when first needed
    events = [make_event() for _ in range(250)]
    down = TelemetryClient(make_config(unused_url, spool_dir=spool, shutdown_timeout_seconds=0.8))
    down.start()
    for event in events:
        down.track(event)
    started = time.monotonic()
    down.stop()
    assert time.monotonic() - started < 1.5
    assert down.stats().spooled == 250
    assert down.queue_size == 0
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    for name in _files(spool):
        assert stat.S_IMODE((spool / name).stat().st_mode) == 0o600

    up = TelemetryClient(make_config(wire.url, spool_dir=spool))
    up.start()  # sends the spool in the background
    wait_until(lambda: len(wire.delivered()) == 250)
    up.stop()
    assert wire.delivered() == {str(e.event_id): 1 for e in events}
    assert _files(spool) == []
    assert up.stats().unspooled == 250
    assert up.stats().sent == 250


def test_flush_after_start_delivers_the_spool(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    events = [make_event() for _ in range(30)]
    with TelemetryClient(make_config(unused_url, spool_dir=tmp_path)) as down:
        for event in events:
            down.track(event)
    client = TelemetryClient(make_config(wire.url, spool_dir=tmp_path))
    client.start()
    assert client.flush() == 0
    assert wire.delivered() == {str(e.event_id): 1 for e in events}
    client.stop()


def test_a_hanging_server_at_stop_leaves_the_events_in_the_spool(
    wire: WireServer, tmp_path: Path
) -> None:
    wire.hang = True
    client = TelemetryClient(
        make_config(wire.url, spool_dir=tmp_path, shutdown_timeout_seconds=0.8)
    )
    client.start()
    event = make_event()
    client.track(event)
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 1.3
    assert client.stats().spooled == 1
    wire.hang = False
    later = TelemetryClient(make_config(wire.url, spool_dir=tmp_path))
    assert later.flush() == 0
    assert wire.delivered()[str(event.event_id)] == 1


def test_a_full_queue_spools_what_it_would_evict(wire: WireServer, tmp_path: Path) -> None:
    wire.down = True
    config = make_config(wire.url, spool_dir=tmp_path, max_queue_size=50, batch_size=10)
    client = TelemetryClient(config)  # default jitter: the worker spends seconds in retries
    client.start()
    events = [make_event() for _ in range(200)]
    for number, event in enumerate(events):
        client.track(event)
        if number % 40 == 39:  # a producer a little slower than a burst of 2x the queue
            wanted = number + 1 - 50
            wait_until(lambda wanted=wanted: client.stats().spooled >= wanted)
    stats = client.stats()
    assert stats.evicted == 0
    assert stats.tracked == 200
    wire.down = False
    wait_until(lambda: len(wire.delivered()) == 200, timeout=40)
    client.stop()
    assert set(wire.delivered()) == {str(e.event_id) for e in events}
    final = client.stats()
    assert final.tracked + final.unspooled == final.sent + final.spooled + final.queue_size


def test_the_size_cap_evicts_the_oldest_files_and_counts_them(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    tally = Tally()
    spool = Spool(tmp_path, max_bytes=100_000, tally=tally)
    batches = [[make_event() for _ in range(50)] for _ in range(6)]
    for batch in batches:
        spool.write(batch)
    files = _files(tmp_path)
    assert sum((tmp_path / n).stat().st_size for n in files) <= 100_000
    snapshot = tally.snapshot(tracked=0, evicted=0, queue_size=0)
    assert snapshot.spooled == 300
    assert snapshot.spool_evicted == 300 - spool.pending() > 0
    # The newest survive: the last batch is still there, the first is gone.
    kept = {str(e.event_id) for claim in iter(spool.claim, None) for e in claim.events}
    assert {str(e.event_id) for e in batches[-1]} <= kept
    assert not {str(e.event_id) for e in batches[0]} & kept
    assert any("deleted its" in m for m in warnings_of(sdk_logs))


def test_a_claim_is_taken_by_one_sender_and_a_dead_senders_claim_is_put_back(
    tmp_path: Path,
) -> None:
    writer = Spool(tmp_path, 10**7, Tally())
    events = [make_event() for _ in range(5)]
    writer.write(events)
    first = writer.claim()
    assert first is not None
    assert [e.event_id for e in first.events] == [e.event_id for e in events]
    assert Spool(tmp_path, 10**7, Tally()).claim() is None  # taken: nobody else gets it
    # A claim left by a process that died (kill -9 between send and delete) goes back.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = first.path.with_name(first.original.name + f".claimed-{dead.stdout.strip()}")
    os.rename(first.path, stale)
    writer.recover()
    again = writer.claim()
    assert again is not None
    assert len(again.events) == 5


def test_unreadable_lines_are_skipped_with_a_warning(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, 10**7, Tally())
    spool.write([make_event()])
    (name,) = _files(tmp_path)
    with open(tmp_path / name, "ab") as out:
        out.write(b"{not json\n")
    claim = spool.claim()
    assert claim is not None
    assert len(claim.events) == 1
    assert any("unreadable lines" in m for m in warnings_of(sdk_logs))


def test_an_unwritable_spool_keeps_the_events_queued_and_says_so(
    unused_url: str, tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    client = TelemetryClient(make_config(unused_url, spool_dir=blocker / "spool"))
    client.start()
    client.track(make_event())
    client.stop()
    assert client.queue_size == 1
    assert any("could not spool" in m for m in warnings_of(sdk_logs))


def test_a_cli_process_exits_within_the_budget_and_the_next_one_delivers(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    budget = {"MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT": "0.8"}
    started = time.monotonic()
    first = spawn(TRACK_AND_STOP, child_env(unused_url, tmp_path, **budget), "40")
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "spooled=40" in out
    wire.hang = True
    second = spawn(TRACK_AND_STOP, child_env(wire.url, tmp_path, **budget), "10")
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert "spooled=10" in out
    assert time.monotonic() - started < 20
    wire.hang = False
    third = spawn(START_AND_FLUSH, child_env(wire.url, tmp_path))
    out, err = third.communicate(timeout=30)
    assert third.returncode == 0, err
    delivered = wire.delivered()
    assert len(delivered) == 50
    assert set(delivered.values()) == {1}
    assert "unspooled=50" in out


def test_four_processes_sharing_a_spool_deliver_every_event_exactly_once(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    writers = [spawn(TRACK_AND_STOP, child_env(unused_url, tmp_path), "150") for _ in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    assert Spool(tmp_path, 10**9, Tally()).pending() == 600
    senders = [spawn(START_AND_FLUSH, child_env(wire.url, tmp_path)) for _ in range(4)]
    for sender in senders:
        _, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
    delivered = wire.delivered()
    assert len(delivered) == 600
    assert set(delivered.values()) == {1}  # one claim per file: nothing sent twice
    assert _files(tmp_path) == []


def test_kill_9_loses_at_most_what_was_not_yet_spooled(wire: WireServer, tmp_path: Path) -> None:
    wire.down = True
    child = spawn(TRACK_UNTIL_SPOOLED, child_env(wire.url, tmp_path), "1000")
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("spooled="), child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    counts = dict(part.split("=") for part in line.split())
    spooled = int(counts["spooled"])
    assert spooled >= 1000 - 100  # all but the queue (max 100) was on disk
    wire.down = False
    later = TelemetryClient(make_config(wire.url, spool_dir=tmp_path))
    assert later.flush(timeout=20) == 0
    assert len(wire.delivered()) == spooled
    assert set(wire.delivered().values()) == {1}


def test_a_failure_midway_through_a_file_returns_only_the_unsent_events(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    events = [make_event() for _ in range(50)]
    with TelemetryClient(make_config(unused_url, spool_dir=tmp_path)) as down:
        for event in events:
            down.track(event)
    # Two batches of 10 go through, then the server fails: 30 events go back to the spool.
    wire.script(accepted_answer, accepted_answer, Answer(503))
    partial = TelemetryClient(
        make_config(wire.url, spool_dir=tmp_path, batch_size=10, max_retries=0)
    )
    assert partial.flush() == 0
    assert partial.stats().unspooled == 20
    assert Spool(tmp_path, 10**7, Tally()).pending() == 30
    later = TelemetryClient(make_config(wire.url, spool_dir=tmp_path))
    later.flush()
    assert later.stats().unspooled == 30
    assert set(wire.delivered()) == {str(e.event_id) for e in events}


def test_leftovers_of_dead_writers_and_empty_files_are_cleaned_up(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**7, Tally())
    stale = tmp_path / ".tmp-1-deadbeef"
    stale.write_bytes(b"half a batch")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".tmp-2-cafe"
    fresh.write_bytes(b"being written")
    empty = tmp_path / "00000000000000000001-1-ab-0.events"
    empty.write_bytes(b"")
    (tmp_path / "not-ours.txt").write_text("left alone")
    (tmp_path / "x.events.claimed-notapid").write_text("left alone")
    spool.recover()
    assert spool.claim() is None  # the empty file was claimed, found empty and deleted
    assert sorted(os.listdir(tmp_path)) == [
        ".tmp-2-cafe",
        "not-ours.txt",
        "x.events.claimed-notapid",
    ]
    assert spool.pending() == 0


async def test_the_async_submitter_sends_the_spool_first_and_spools_what_overflows(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    old = [make_event() for _ in range(20)]
    with TelemetryClient(make_config(unused_url, spool_dir=tmp_path)) as down:
        for event in old:
            down.track(event)
    client = TelemetryClient(
        make_config(wire.url, spool_dir=tmp_path, max_queue_size=20, batch_size=10)
    )
    await client.start_async()
    deadline = time.monotonic() + 10
    while len(wire.delivered()) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert set(wire.delivered()) == {str(e.event_id) for e in old}  # without waiting an interval
    wire.down = True
    new = [make_event() for _ in range(40)]
    for event in new:
        client.track(event)
        await asyncio.sleep(0.005)
    while client.stats().spooled < 20 and time.monotonic() < deadline + 10:
        await asyncio.sleep(0.01)
    assert client.stats().evicted == 0
    wire.down = False
    assert await client.flush_async(timeout=10) == 0
    await client.stop_async()
    assert set(wire.delivered()) == {str(e.event_id) for e in old + new}


def test_a_batch_stuck_in_flight_at_stop_is_spooled_too(wire: WireServer, tmp_path: Path) -> None:
    wire.hang = True
    config = make_config(
        wire.url,
        spool_dir=tmp_path,
        batch_size=5,
        request_timeout_seconds=5.0,
        shutdown_timeout_seconds=0.5,
    )
    client = TelemetryClient(config)
    client.start()
    events = [make_event() for _ in range(7)]
    for event in events:
        client.track(event)  # a full batch: its request hangs for up to 5 s
    wait_until(lambda: len(wire.event_requests()) == 1)
    started = time.monotonic()
    client.stop()  # gives up on the worker after the budget
    assert time.monotonic() - started < 1.5
    wire.hang = False
    wire.release.set()
    later = TelemetryClient(make_config(wire.url, spool_dir=tmp_path))
    later.flush()
    assert {str(e.event_id) for e in events} <= set(wire.delivered())


def test_a_file_the_sdk_did_not_write_is_read_only_up_to_a_limit(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    line = make_event().model_dump_json().encode() + b"\n"
    (tmp_path / "00000000000000000001-1-ab-1.events").write_bytes(line * 1500)
    claim = Spool(tmp_path, 10**9, Tally()).claim()
    assert claim is not None
    assert len(claim.events) == 1000
    assert any("more than 1000 lines" in m for m in warnings_of(sdk_logs))


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(st.binary(max_size=200), st.just(b"EVENT")), max_size=20))
def test_any_file_content_reads_as_its_valid_events_only(
    tmp_path: Path, lines: list[bytes]
) -> None:
    # A spool file may be truncated, edited or foreign: reading it never raises, and what comes
    # back is exactly its well-formed event lines.
    event = make_event()
    content = b"\n".join(event.model_dump_json().encode() if x == b"EVENT" else x for x in lines)
    directory = tmp_path / os.urandom(4).hex()
    directory.mkdir(mode=0o700)
    (directory / "00000000000000000001-1-ab-1.events").write_bytes(content)
    claim = Spool(directory, 10**9, Tally()).claim()
    expected = lines.count(b"EVENT")
    found = [] if claim is None else claim.events
    assert [e.event_id for e in found] == [event.event_id] * expected
