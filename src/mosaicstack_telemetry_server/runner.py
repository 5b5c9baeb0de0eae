"""Running the server: in a background thread (tests, demo, benchmarks) or from environment
variables (several uvicorn worker processes, each building its app with `app_from_env`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from mosaicstack_telemetry_server.app import create_app
from mosaicstack_telemetry_server.logging_config import configure_logging
from mosaicstack_telemetry_server.settings import (
    ENV_DATABASE_URL,
    LIMITS,
    ServerSettings,
    check_setting,
)
from mosaicstack_telemetry_server.storage import Storage

__all__ = [
    "ENV_LOG_LEVEL",
    "ENV_SETTINGS",
    "app_from_env",
    "serve_in_thread",
    "settings_from_env",
    "settings_to_env",
]

# The name of a variable, not a secret.
ENV_METRICS_TOKEN = "MOSAIC_TELEMETRY_METRICS_TOKEN"  # noqa: S105  # nosec B105
# Each setting's environment variable (the CLI's flags default to these too).
ENV_SETTINGS: Mapping[str, str] = {
    "database_url": ENV_DATABASE_URL,
    "min_sample_size": "MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE",
    "stats_max_age_seconds": "MOSAIC_TELEMETRY_STATS_MAX_AGE",
    "stats_window_days": "MOSAIC_TELEMETRY_STATS_WINDOW_DAYS",
    "rate_limit_per_second": "MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND",
    "rate_limit_burst": "MOSAIC_TELEMETRY_RATE_LIMIT_BURST",
    "max_body_bytes": "MOSAIC_TELEMETRY_MAX_BODY_BYTES",
    "auth_failure_rate_per_second": "MOSAIC_TELEMETRY_AUTH_FAILURE_RATE_PER_SECOND",
    "auth_failure_burst": "MOSAIC_TELEMETRY_AUTH_FAILURE_BURST",
    "trusted_proxies": "MOSAIC_TELEMETRY_TRUSTED_PROXIES",
    "metrics_token": ENV_METRICS_TOKEN,
    "retention_days": "MOSAIC_TELEMETRY_RETENTION_DAYS",
}
# Log level of worker processes (set by `mosaic-telemetry serve --workers N`).
ENV_LOG_LEVEL = "MOSAIC_TELEMETRY_LOG_LEVEL"
_STARTUP_TIMEOUT_SECONDS = 30.0
_SHUTDOWN_TIMEOUT_SECONDS = 10


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """`ServerSettings` with every variable of `ENV_SETTINGS` that is set applied.

    Raises ValueError naming the variable when a value does not parse or is out of range.
    """
    environ = os.environ if environ is None else environ
    settings = ServerSettings()
    for name, variable in ENV_SETTINGS.items():
        raw = environ.get(variable)
        if not raw:
            continue
        kind = type(getattr(settings, name))
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{variable} must be a valid {kind.__name__}") from None
        if name in LIMITS:
            check_setting(name, value, variable)
        setattr(settings, name, value)
    return settings


def settings_to_env(settings: ServerSettings) -> dict[str, str]:
    """The environment variables that make `settings_from_env` rebuild `settings`."""
    return {variable: str(getattr(settings, name)) for name, variable in ENV_SETTINGS.items()}


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (one app per worker process), configured by env vars."""
    level = os.environ.get(ENV_LOG_LEVEL)
    if level:
        # Worker processes start with no logging set up: give them the parent's JSON lines.
        configure_logging(level)
    return create_app(settings_from_env())


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
        http="mosaicstack_telemetry_server.guard:GuardedH11Protocol",  # as `serve` does
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
