"""Slow clients (guard.py), over real sockets against `mosaic-telemetry serve` subprocesses.

The slowloris scenario of issue 11, scaled down and bounded in time: the server runs under a
descriptor limit of 160; 200 connections trickle one header byte a second and reconnect when
closed; a normal client must still get 95 % of its answers within 1 s, and the log stay small.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from _api_helpers import free_port, wait_until

from mosaicstack_telemetry_server.app import create_app
from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.guard import (
    GuardedH11Protocol,
    descriptor_ceiling,
    effective_max_connections,
)
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings, load_settings, settings_to_env

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
HEAD = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n"
FD_LIMIT = 160
ATTACKERS = 200


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def guarded(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`serve` under a descriptor limit with 2 s head and body deadlines: (port, its log)."""
    assert main(["migrate", "--database", sqlite_url]) == 0
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [EXE, "serve", "--port", str(port), "--database", sqlite_url,
             "--header-timeout", "2", "--body-timeout", "2"],
            stdout=sink, stderr=subprocess.STDOUT, preexec_fn=_limit_descriptors,
        )  # fmt: skip
        try:
            wait_until(lambda: process.poll() is not None or _answers(port), 60, "serve")
            assert process.poll() is None
            yield port, log
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def _trickle(port: int, until: float) -> None:
    while time.monotonic() < until:
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD)
            while time.monotonic() < until:
                await asyncio.sleep(1.0)
                writer.write(b"X")
                await writer.drain()
        except OSError:
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


async def _ask(port: int) -> bool:
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"Connection: close\r\n\r\n")
            status = await reader.readline()
            writer.close()
            return status.startswith(b"HTTP/1.1 200")
    except (TimeoutError, OSError):
        return False


async def _attack(port: int, seconds: float) -> list[bool]:
    until = time.monotonic() + seconds
    attackers = [asyncio.create_task(_trickle(port, until)) for _ in range(ATTACKERS)]
    await asyncio.sleep(2.0)  # every descriptor the server has is taken by now
    answers = []
    while time.monotonic() < until:
        answers.append(await _ask(port))
        await asyncio.sleep(0.1)
    await asyncio.gather(*attackers)
    return answers


def test_a_normal_client_is_answered_during_a_slowloris_attack(
    guarded: tuple[int, Path],
) -> None:
    port, log = guarded
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * ATTACKERS)), hard))
    before = log.stat().st_size
    answers = asyncio.run(_attack(port, seconds=8.0))
    assert len(answers) >= 20
    assert sum(answers) / len(answers) >= 0.95, answers
    grown = log.stat().st_size - before
    assert grown < 100_000, log.read_text()[-2000:]
    reports = [
        json.loads(line) for line in log.read_text().splitlines()
        if line.startswith("{") and '"mosaicstack_telemetry_server.guard"' in line
    ]  # fmt: skip
    assert 1 <= len(reports) <= 2  # one line per minute at most, with counts
    # The first line reports whichever guard counter moved first: on a loaded machine that may be
    # the head deadline, or one accept error in a burst, rather than the cap (the cap alone is
    # pinned below). What matters here is the answers and the log's size, checked above.
    counters = ("closed_at_cap", "header_deadline", "body_deadline", "accept_errors")
    assert sum(reports[0].get(name, 0) for name in counters) >= 1, reports[0]


def _open_and_wait_for_close(port: int, payload: bytes, timeout: float) -> float:
    """Seconds until the server closes a connection that sent `payload` and then stalled."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        while sock.recv(4096):  # an error response may come before the close
            pass
    return time.monotonic() - started


def test_a_stalled_head_or_body_is_closed_at_its_deadline(guarded: tuple[int, Path]) -> None:
    port, _log = guarded
    assert 1.5 <= _open_and_wait_for_close(port, b"GET /livez HTTP/1.1\r\nHo", 10) <= 5
    body_first = (
        b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"events"'
    )
    assert 1.5 <= _open_and_wait_for_close(port, body_first, 10) <= 5
    # An idle kept-alive connection does not hold its slot forever either.
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        assert client.get("/livez").status_code == 200


def test_guard_settings_come_from_flags_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_HEADER_TIMEOUT", "4.5")
    monkeypatch.setenv("MOSAIC_TELEMETRY_MAX_CONNECTIONS", "500")
    settings = load_settings()
    assert (settings.header_timeout, settings.body_timeout, settings.max_connections) == (
        4.5,
        30.0,
        500,
    )
    assert settings_to_env(settings)["MOSAIC_TELEMETRY_BODY_TIMEOUT"] == "30.0"
    monkeypatch.setenv("MOSAIC_TELEMETRY_BODY_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"BODY_TIMEOUT must be a number between 0\.1 and 3600"):
        load_settings()
    monkeypatch.setenv("MOSAIC_TELEMETRY_BODY_TIMEOUT", "0")
    with pytest.raises(ValueError, match=r"BODY_TIMEOUT must be between 0\.1 and 3600"):
        load_settings()
    with pytest.raises(SystemExit):
        main(["serve", "--header-timeout", "0"])
    assert "between 0.1 and 3600" in capsys.readouterr().err


def test_the_cap_stays_below_the_descriptor_limit() -> None:
    assert descriptor_ceiling(1024) == 896
    assert descriptor_ceiling(160) == 96
    assert effective_max_connections(5000, 1024) == 896
    assert effective_max_connections(100, 1024) == 100
    assert effective_max_connections(0, 1 << 20) == (1 << 20) - (1 << 17)
    assert descriptor_ceiling() >= 1


def test_over_the_cap_the_longest_waiting_connection_is_closed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_MAX_CONNECTIONS", "3")
    with serve_in_thread(ServerSettings(database_url=sqlite_url)) as url:
        port = int(url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            idle[0].sendall(b"GET /livez HTTP/1.1\r\n")  # sending, but never finishing
            with caplog.at_level(logging.WARNING, logger="mosaicstack_telemetry_server.guard"):
                # A fourth connection: the oldest waiting one is closed to make room.
                assert httpx.get(url + "/livez", timeout=5).status_code == 200
                assert idle[0].recv(1) == b""
            reports = [r for r in caplog.records if r.name.endswith(".guard")]
            assert reports[0].fields == {"closed_at_cap": 1}  # type: ignore[attr-defined]
        finally:
            for sock in idle:
                sock.close()


def test_accept_errors_are_counted_into_one_line_and_other_loop_errors_pass_through(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = uvicorn.Config(
        create_app(ServerSettings(database_url=sqlite_url)),
        http=GuardedH11Protocol,
        log_config=None,
        port=0,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # installs the guard
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        for _ in range(1000):
            loop.call_exception_handler({"message": "socket.accept() out of system resource"})
        loop.call_exception_handler({"message": "something else entirely"})
        writer.close()
        server.should_exit = True
        await task

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    guard_lines = [r for r in caplog.records if r.name.endswith(".guard")]
    assert [r.fields for r in guard_lines] == [{"accept_errors": 1}]  # type: ignore[attr-defined]
    assert any("something else entirely" in r.getMessage() for r in caplog.records)


def test_deadlines_in_process_and_a_kept_alive_connection_gets_a_fresh_one(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_HEADER_TIMEOUT", "0.5")
    monkeypatch.setenv("MOSAIC_TELEMETRY_BODY_TIMEOUT", "0.5")
    with serve_in_thread(ServerSettings(database_url=sqlite_url)) as url:
        port = int(url.rsplit(":", 1)[1])
        assert _open_and_wait_for_close(port, b"GET /livez HTTP/1.1\r\nHo", 10) < 3
        body_first = b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{"
        assert _open_and_wait_for_close(port, body_first, 10) < 3
        with httpx.Client(base_url=url) as client:
            # Two requests on one connection, each well within its own head deadline.
            assert client.get("/livez").status_code == 200
            time.sleep(0.3)
            assert client.get("/livez").status_code == 200
