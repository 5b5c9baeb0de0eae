"""The slowloris scenario of issue 11, against any server command, over loopback only.

`python -m bench.slowloris --server NAME [--attackers 1100] [--seconds 45] [--fd-limit 1024]`,
NAME one of ours, uvicorn-defaults, uvicorn-limits, hypercorn, granian, granian-2s. The server
runs under `ulimit -n FD_LIMIT`; `attackers` connections each send a request line, then one
header byte every `--trickle` seconds, reconnecting when the server closes them (as a real
attacker would). Meanwhile a normal client asks `GET /v1/health` on a fresh connection every
0.25 s with a 1 s budget. Printed: the share of its answers (200) within 1 s, and how much the
server's log grew.

Bounded: every loop ends at the deadline; the server is stopped (and waited for) on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._server import free_port

__all__ = ["Outcome", "run_scenario"]

_REQUEST_LINE = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@dataclass
class Outcome:
    """What the normal client saw and what the server wrote."""

    asked: int
    answered_in_time: int
    log_bytes: int
    attacker_connections: int

    @property
    def share(self) -> float:
        """Answers within 1 s over requests made."""
        return self.answered_in_time / self.asked if self.asked else 0.0


def _command(server: str, port: int, database: str) -> list[str]:
    cli = str(Path(sys.executable).with_name("mosaic-telemetry"))
    if server == "ours":
        return [cli, "serve", "--port", str(port), "--database", database]
    if server == "uvicorn-defaults":
        return [
            sys.executable, "-m", "uvicorn", "--factory", "--port", str(port), "--log-level",
            "warning", "mosaicstack_telemetry_server.runner:app_from_env",
        ]  # fmt: skip
    if server == "uvicorn-limits":
        return [
            *_command("uvicorn-defaults", port, database),
            "--limit-concurrency", "900", "--timeout-keep-alive", "5",
            "--h11-max-incomplete-event-size", "16384", "--backlog", "2048",
        ]  # fmt: skip
    if server == "hypercorn":
        return [
            sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
            "--read-timeout", "2", "--keep-alive", "5", "--backlog", "2048",
            "mosaicstack_telemetry_server.runner:app_from_env()",
        ]  # fmt: skip
    if server == "granian-2s":
        command = _command("granian", port, database)
        command[command.index("5000")] = "2000"
        return command
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
            "--port", str(port), "--http", "1", "--http1-header-read-timeout", "5000",
            "--backlog", "2048", "--log-level", "warning",
            "mosaicstack_telemetry_server.runner:app_from_env",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


async def _attacker(port: int, trickle: float, until: float, opened: list[int]) -> None:
    while time.monotonic() < until:
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            opened[0] += 1
            writer.write(_REQUEST_LINE)
            while time.monotonic() < until:
                await asyncio.sleep(trickle)
                writer.write(b"X")
                await writer.drain()
        except (OSError, ConnectionError):
            await asyncio.sleep(0.5)  # refused or cut: try again, as an attacker would
        finally:
            if writer is not None:
                writer.close()


async def _ask(port: int) -> bool:
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_REQUEST_LINE + b"Connection: close\r\n\r\n")
            status = await reader.readline()
            writer.close()
            return status.split(b" ")[1:2] == [b"200"]
    except (TimeoutError, OSError, ConnectionError, IndexError):
        return False


async def _normal_client(port: int, start: float, until: float) -> tuple[int, int]:
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    asked = answered = 0
    while time.monotonic() < until:
        asked += 1
        answered += await _ask(port)
        await asyncio.sleep(0.25)
    return asked, answered


async def _scenario(port: int, attackers: int, trickle: float, seconds: float) -> Outcome:
    until = time.monotonic() + seconds
    opened = [0]
    tasks = []
    for _ in range(attackers):
        tasks.append(asyncio.create_task(_attacker(port, trickle, until, opened)))
        await asyncio.sleep(0)  # spread the connects over the loop
    # The normal client starts once the attackers had time to take every slot.
    asked, answered = await _normal_client(port, time.monotonic() + min(5.0, seconds / 4), until)
    await asyncio.gather(*tasks, return_exceptions=True)
    return Outcome(asked, answered, 0, opened[0])


def _wait_up(port: int, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def run_scenario(
    server: str, attackers: int, seconds: float, fd_limit: int, trickle: float = 3.0
) -> Outcome:
    """Start `server` under `fd_limit`, attack it for `seconds`, stop it; the outcome."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, attackers + 256)), hard))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mosaic-slowloris-") as directory:
        database = f"sqlite:///{Path(directory) / 'telemetry.db'}"
        log_path = Path(directory) / "server.log"
        env = {**os.environ, "MOSAIC_TELEMETRY_DATABASE_URL": database}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _command(server, port, database),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=lambda: _limit_fds(fd_limit),  # the child has no threads yet
            )
            try:
                _wait_up(port, time.monotonic() + 30)
                before = log_path.stat().st_size
                outcome = asyncio.run(_scenario(port, attackers, trickle, seconds))
                outcome.log_bytes = log_path.stat().st_size - before
                if os.environ.get("SLOWLORIS_KEEP_LOG"):
                    import shutil

                    shutil.copy(log_path, os.environ["SLOWLORIS_KEEP_LOG"])
            finally:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run one scenario and print its outcome."""
    parser = argparse.ArgumentParser(prog="python -m bench.slowloris", description=__doc__)
    parser.add_argument("--server", default="ours")
    parser.add_argument("--attackers", type=int, default=1100)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--trickle", type=float, default=3.0)
    args = parser.parse_args(argv)
    outcome = run_scenario(args.server, args.attackers, args.seconds, args.fd_limit, args.trickle)
    print(
        f"{args.server}: {outcome.answered_in_time}/{outcome.asked} answers within 1 s "
        f"({outcome.share:.0%}), log +{outcome.log_bytes / 1e6:.2f} MB, "
        f"{outcome.attacker_connections} attacker connections opened"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
