"""Databases and server processes for the end-to-end and prediction suites."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench._timing import deadline_wait

__all__ = ["POSTGRES_URL", "database", "free_port", "serve_process"]

# The bench's PostgreSQL; each run gets a schema of its own, dropped afterwards.
POSTGRES_URL = os.environ.get(
    "MOSAIC_TELEMETRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, empty database URL of the backend ("sqlite" or "postgres"), removed after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'telemetry.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _cli() -> str:
    return str(Path(sys.executable).with_name("mosaic-telemetry"))


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _cli_of(source: Path) -> list[str]:
    """The command line of an older checkout's server (its `src` folder), run by this Python."""
    module = (
        "mosaicstack_telemetry_cli"
        if (source / "mosaicstack_telemetry_cli").is_dir()
        else "mosaicstack_telemetry_server.cli"  # before the CLI had a package of its own
    )
    return [sys.executable, "-m", module]


@contextmanager
def serve_process(
    database_url: str, workers: int = 1, *, source: Path | None = None
) -> Iterator[str]:
    """`mosaic-telemetry serve --workers N` as a subprocess; yields its base URL once healthy.

    `source`: the `src` folder of another checkout (an older commit) to serve instead of this
    one's, put first on the server's PYTHONPATH.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [_cli()] if source is None else _cli_of(source)
    command += ["serve", "--database", database_url, "--host", "127.0.0.1", "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    # The per-key rate limit is lifted: it protects a server, it is not what is measured.
    env = {
        **os.environ,
        "MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND": "1000000",
        "MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "1000000",
    }
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    # A file, not a pipe: a chatty server must never block on a full pipe nobody reads.
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)

        def up() -> bool:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited early: {log.read()[-2000:]}")
            return _healthy(base_url)

        try:
            deadline_wait(up, 60, "the server to answer /v1/health")
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
