"""Process life: the flush at interpreter exit, and a working client in a child of os.fork()."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from mosaicstack_telemetry import TaskCompletionEvent, TelemetryClient

from ._wire_server import Answer, WireServer
from .conftest import API_KEY, INSTANCE_ID, make_config, make_event

_EXIT_SCRIPT = """
import asyncio, sys
from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig
config = TelemetryConfig(server_url=sys.argv[1], api_key={key!r}, instance_id={iid!r},
                         submit_interval_seconds=3600)
client = TelemetryClient(config)
event = lambda: EventBuilder({iid!r}).model("m").quality(passed=True).build()
if sys.argv[2] == "thread":
    client.start()
    for _ in range(3):
        client.track(event())
elif sys.argv[2] == "async":
    async def main():
        await client.start_async()
        for _ in range(3):
            client.track(event())
    asyncio.run(main())  # returns without stop_async(): the loop and its task are gone
elif sys.argv[2] == "stop_in_loop":
    async def main():
        await client.start_async()
        for _ in range(3):
            client.track(event())
        client.stop()  # cannot wait on its own loop: the exit hook must still flush
    asyncio.run(main())  # cancels the task before it could flush
elif sys.argv[2] == "dropped":
    def work():
        started = TelemetryClient(config)  # started, then dropped by its owner
        started.start()
        for _ in range(3):
            started.track(event())
    work()
    del client
elif sys.argv[2] == "overrun":
    import time
    slow = TelemetryClient(TelemetryConfig(server_url=sys.argv[1], api_key={key!r},
                                           instance_id={iid!r}, batch_size=3,
                                           request_timeout_seconds=0.5))
    slow.start()
    for _ in range(3):
        slow.track(event())  # a full batch: sent at once, and the server trickles its answer
    deadline = time.monotonic() + 10
    while slow.queue_size and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(2):
        slow.track(event())  # queued behind the stuck request
    slow.stop()  # gives up waiting for the worker: the 2 must still go out at exit
    print("stopped", slow.queue_size)
else:
    for _ in range(3):
        client.track(event())  # never started: nothing is sent at exit
print("exiting")
"""


def _run_script(url: str, mode: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(_EXIT_SCRIPT.format(key=API_KEY, iid=INSTANCE_ID))
    return subprocess.run(
        [sys.executable, "-c", script, url, mode],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_TELEMETRY_")},
    )


@pytest.mark.parametrize("mode", ["thread", "async", "dropped", "stop_in_loop"])
def test_started_client_flushes_at_interpreter_exit(wire: WireServer, mode: str) -> None:
    result = _run_script(wire.url, mode)
    assert result.returncode == 0, result.stderr
    assert "exiting" in result.stdout
    assert sum(wire.delivered().values()) == 3


def test_a_worker_overrunning_its_stop_budget_leaves_the_rest_to_the_exit_flush(
    wire: WireServer,
) -> None:
    # Each byte of the first answer comes within the read timeout, so that request outlasts
    # stop()'s budget; what was queued behind it must not be lost with the worker.
    wire.script(Answer(200, body={"accepted": 3, "rejected": 0, "results": []}, trickle=0.1))
    result = _run_script(wire.url, "overrun")
    assert result.returncode == 0, result.stderr
    assert "stopped 2" in result.stdout
    assert "did not finish its final flush in time; 2 events still queued" in result.stderr
    second = wire.event_requests()[1]
    assert len(second.event_ids) == 2
    assert second.status == 200


def test_never_started_client_sends_nothing_at_exit(wire: WireServer) -> None:
    result = _run_script(wire.url, "never")
    assert result.returncode == 0, result.stderr
    assert wire.requests == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_gets_an_empty_queue_and_its_own_working_submitter(
    wire: WireServer,
) -> None:
    # batch_size=2 and a long interval: one tracked event stays queued, no flush wakes up.
    client = TelemetryClient(make_config(wire.url, batch_size=2, submit_interval_seconds=3600))
    client.start()
    leftover = make_event()
    child_event = make_event()
    client.track(leftover)
    assert client.queue_size == 1

    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            ok = client.queue_size == 0 and client.is_running
            client.track(child_event)
            client.stop()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert wire.delivered()[str(child_event.event_id)] == 1
    assert str(leftover.event_id) not in wire.delivered()  # the child did not resend it
    assert client.is_running  # the parent is unaffected
    assert client.queue_size == 1
    client.stop()
    assert wire.delivered()[str(leftover.event_id)] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_of_a_stopped_client_starts_nothing(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.track(make_event())
    pid = os.fork()
    if pid == 0:
        os._exit(0 if client.queue_size == 0 and not client.is_running else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.queue_size == 1
    assert wire.requests == []


def _track_in_child(client: TelemetryClient, event_json: str) -> None:
    # No stop(): the child ends like every multiprocessing child, with os._exit().
    client.track(TaskCompletionEvent.model_validate_json(event_json))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_multiprocessing_fork_child_flushes_at_its_exit(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url, batch_size=10, submit_interval_seconds=3600))
    client.start()
    child_events = [make_event() for _ in range(2)]
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_track_in_child, args=(client, event.model_dump_json()))
        for event in child_events
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    delivered = wire.delivered()
    assert all(delivered[str(event.event_id)] == 1 for event in child_events)
    client.stop()
