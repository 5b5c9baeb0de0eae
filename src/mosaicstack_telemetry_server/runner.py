"""Running the server: in a background thread (tests, demo, benchmarks) or from environment
variables (several uvicorn worker processes, each building its app with `app_from_env` from the
variables `settings_to_env` wrote).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from mosaicstack_telemetry_server.app import create_app
from mosaicstack_telemetry_server.guard import guarded_protocol
from mosaicstack_telemetry_server.logging_config import configure_logging
from mosaicstack_telemetry_server.settings import ServerSettings, load_settings, settings_to_env
from mosaicstack_telemetry_server.storage import Storage

__all__ = [
    "app_from_env",
    "serve_in_thread",
    "settings_from_env",
    "settings_to_env",
]

_STARTUP_TIMEOUT_SECONDS = 30.0
_SHUTDOWN_TIMEOUT_SECONDS = 10


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """The settings the variables of `environ` (default: the process's) give, defaults elsewhere.

    Raises ValueError naming the variable when a value does not parse or is out of range.
    """
    return load_settings({}, environ)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (one app per worker process), configured by env vars."""
    settings = settings_from_env()
    # Worker processes start with no logging set up: give them the parent's JSON lines.
    configure_logging(settings.log_level)
    return create_app(settings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextmanager
def serve_in_thread(
    settings: ServerSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    storage: Storage | None = None,
) -> Iterator[str]:
    """Serve the app with uvicorn in a daemon thread; yields its base URL once it is ready.

    Port 0 picks a free port (bound here, so the URL is known before uvicorn starts). On exit
    the server stops gracefully: in-flight requests finish, the lifespan shuts down.
    """
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(settings, storage),
        log_config=None,
        access_log=False,  # ours is structured (logging_config.py)
        lifespan="on",
        proxy_headers=False,  # the app decides whom to believe (proxies.py)
        http=guarded_protocol(settings),  # deadlines and a connection cap, as `serve` has
        timeout_graceful_shutdown=_SHUTDOWN_TIMEOUT_SECONDS,
    )
    server = uvicorn.Server(config)

    def run() -> None:
        # Uvicorn calls sys.exit() when the app fails to start: the wait below reports it.
        with contextlib.suppress(SystemExit):
            server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="mosaic-telemetry-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server failed to start (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {_STARTUP_TIMEOUT_SECONDS}s")
            thread.join(0.01)
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT_SECONDS + 5)
        sock.close()
