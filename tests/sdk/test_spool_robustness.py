"""The spool against what a container, a huge file or another user can leave in its directory.

Real files in tmp_path; the client's view is checked through a client against a closed port.
"""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TelemetryClient
from mosaicstack_telemetry._spool import Spool
from mosaicstack_telemetry.stats import Tally

from .conftest import make_config, make_event, warnings_of

_MAX_LINE = 64 * 1024  # _spool._MAX_LINE_BYTES


def _spool_with_one_file(directory: Path, count: int = 3) -> tuple[Spool, Path]:
    spool = Spool(directory, 10**7, Tally())
    spool.write([make_event() for _ in range(count)])
    (name,) = os.listdir(directory)
    return spool, directory / name


def test_a_claim_left_with_our_own_pid_by_a_killed_predecessor_is_put_back(
    tmp_path: Path,
) -> None:
    # In a container the app is pid 1 after every restart: the predecessor's claim bears our pid.
    spool, ready = _spool_with_one_file(tmp_path)
    os.rename(ready, ready.with_name(f"{ready.name}.claimed-{os.getpid()}"))
    assert spool.pending() == 0
    spool.recover()
    assert spool.pending() == 3
    claim = spool.claim()
    assert claim is not None
    assert len(claim.events) == 3


def test_a_claim_this_process_holds_is_not_put_back_by_its_own_recover(tmp_path: Path) -> None:
    spool, _ = _spool_with_one_file(tmp_path)
    held = spool.claim()
    assert held is not None
    other = Spool(tmp_path, 10**7, Tally())  # another client of this process, same directory
    other.recover()
    assert other.claim() is None
    spool.finish(held)
    assert os.listdir(tmp_path) == []


def test_a_claim_older_than_the_staleness_bound_is_put_back_though_its_pid_lives(
    tmp_path: Path,
) -> None:
    # The pid is alive but not the claimer's (reused, or another container's pid 1).
    spool, ready = _spool_with_one_file(tmp_path)
    stale = ready.with_name(f"{ready.name}.claimed-{os.getppid()}")
    os.rename(ready, stale)
    old = time.time() - 11 * 60
    os.utime(stale, (old, old))
    spool.recover()
    assert spool.pending() == 3


def test_a_fresh_claim_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    spool, ready = _spool_with_one_file(tmp_path)
    os.rename(ready, ready.with_name(f"{ready.name}.claimed-{os.getppid()}"))
    spool.recover()
    assert spool.pending() == 0


def test_claiming_restarts_the_files_clock_so_an_old_file_is_not_stale_once_claimed(
    tmp_path: Path,
) -> None:
    # A rename keeps the mtime: a file spooled an hour ago would look abandoned the moment it is
    # claimed, and another process would send it at the same time.
    spool, ready = _spool_with_one_file(tmp_path)
    old = time.time() - 3600
    os.utime(ready, (old, old))
    claim = spool.claim()
    assert claim is not None
    assert time.time() - claim.path.stat().st_mtime < 60


def test_a_huge_line_is_skipped_in_bounded_memory_and_the_next_lines_are_read(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    event = make_event()
    path = tmp_path / "00000000000000000001-1-ab-2.events"
    with open(path, "wb") as out:
        out.write(b"x" * (32 * 1024 * 1024) + b"\n")
        out.write(event.model_dump_json().encode() + b"\n")
    tracemalloc.start()
    try:
        claim = Spool(tmp_path, 10**9, Tally()).claim()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert claim is not None
    assert [e.event_id for e in claim.events] == [event.event_id]
    assert peak < 4 * 1024 * 1024
    assert any("skipped 1 unreadable lines" in m for m in warnings_of(sdk_logs))


@pytest.mark.parametrize(("extra", "read"), [(-1, True), (0, True), (1, False)])
def test_an_event_line_is_read_up_to_the_line_limit_and_no_further(
    tmp_path: Path, extra: int, read: bool
) -> None:
    # Padding with spaces keeps the JSON valid: only the length decides.
    event = make_event()
    body = event.model_dump_json().encode()
    line = body + b" " * (_MAX_LINE + extra - len(body))
    (tmp_path / "00000000000000000001-1-ab-1.events").write_bytes(line + b"\n")
    claim = Spool(tmp_path, 10**9, Tally()).claim()
    assert (claim is not None) is read


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mode=st.integers(min_value=0, max_value=0o077))
def test_a_spool_directory_others_may_write_is_refused_and_one_they_may_read_is_tightened(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture, mode: int
) -> None:
    directory = tmp_path / os.urandom(4).hex()
    directory.mkdir()
    os.chmod(directory, 0o700 | mode)
    sdk_logs.clear()
    spool = Spool(directory, 10**7, Tally())
    written = spool.write([make_event()]) + spool.write([make_event()])
    if mode & 0o022:  # others could have planted files: never sent as ours
        assert written == 0
        assert spool.pending() == 0
        assert len([m for m in warnings_of(sdk_logs) if "is not used" in m]) == 1
    else:  # ours and only readable by others (a plain mkdir's 0755): made 0700 and used
        assert written == 2
        assert spool.pending() == 2
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_symlinked_spool_directory_is_refused(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    spool = Spool(tmp_path / "link", 10**7, Tally())
    assert spool.write([make_event()]) == 0
    assert os.listdir(real) == []
    assert any("is not used" in m for m in warnings_of(sdk_logs))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_spool_directory_owned_by_another_user_is_refused(
    tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    _spool_with_one_file(tmp_path / "theirs")
    os.chown(tmp_path / "theirs", 65534, 65534)
    stranger = Spool(tmp_path / "theirs", 10**7, Tally())
    stranger.recover()
    assert stranger.claim() is None
    assert any("owned by uid 65534" in m for m in warnings_of(sdk_logs))


def test_a_client_with_a_refused_spool_keeps_its_events_queued_and_warns_once(
    unused_url: str, tmp_path: Path, sdk_logs: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o770)  # noqa: S103 - the point: a directory the group may write to
    client = TelemetryClient(make_config(unused_url, spool_dir=shared))
    client.start()
    client.track(make_event())
    client.stop()
    assert client.queue_size == 1
    assert client.stats().spooled == 0
    assert os.listdir(shared) == []
    assert len([m for m in warnings_of(sdk_logs) if "is not used" in m]) == 1


def test_a_symlink_in_place_of_a_spool_file_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(make_event().model_dump_json().encode() + b"\n")
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    (spool_dir / "00000000000000000001-1-ab-1.events").symlink_to(outside)
    assert Spool(spool_dir, 10**7, Tally()).claim() is None
    assert outside.exists()  # the link went, not what it points to
    assert os.listdir(spool_dir) == []
