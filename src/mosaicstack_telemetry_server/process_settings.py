"""How `serve` runs (interface, port, workers, shutdown, log level), read with pydantic-settings.

Precedence: a flag > its `MOSAIC_TELEMETRY_*` variable > `PORT` (the port only, as platforms
such as Heroku or Cloud Run set it) > the default. The app's own settings live in
`settings.py` and reach worker processes through `runner.ENV_SETTINGS`; these are needed by
the parent process alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_GRACEFUL_SECONDS",
    "ENV_PROCESS",
    "LOG_LEVELS",
    "MAX_WORKERS",
    "ProcessSettings",
    "process_settings",
]

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
MAX_WORKERS = 64
# How long `serve` lets in-flight requests finish after SIGTERM/SIGINT.
DEFAULT_GRACEFUL_SECONDS = 30
# Each field's variable; `PORT` is read after `MOSAIC_TELEMETRY_PORT`.
ENV_PROCESS: Mapping[str, str] = {
    "host": "MOSAIC_TELEMETRY_HOST",
    "port": "MOSAIC_TELEMETRY_PORT",
    "workers": "MOSAIC_TELEMETRY_WORKERS",
    "graceful_timeout": "MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT",
    "log_level": "MOSAIC_TELEMETRY_LOG_LEVEL",
}
_FLAGS: Mapping[str, str] = {name: "--" + name.replace("_", "-") for name in ENV_PROCESS}


class ProcessSettings(BaseSettings):
    """The settings of the serving process itself (see the module's docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="MOSAIC_TELEMETRY_",
        env_ignore_empty=True,  # as for every other variable: empty means the default
        populate_by_name=True,  # flags are given by field name
        extra="ignore",
        frozen=True,
    )

    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    port: int = Field(
        8000, ge=0, le=65535, validation_alias=AliasChoices("MOSAIC_TELEMETRY_PORT", "PORT")
    )
    workers: int = Field(1, ge=1, le=MAX_WORKERS)
    graceful_timeout: int = Field(DEFAULT_GRACEFUL_SECONDS, ge=0, le=3600)
    log_level: LogLevel = "info"


def _source(name: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Where the value of `name` came from, as the user wrote it."""
    if name in flags:
        return _FLAGS[name]
    variable = ENV_PROCESS[name]
    if name == "port" and not environ.get(variable) and environ.get("PORT"):
        return "PORT"
    return variable


def process_settings(flags: Mapping[str, Any]) -> ProcessSettings:
    """The flags given (None: not given) over the environment; ValueError names the source."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return ProcessSettings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = field if field in ENV_PROCESS else "port"
        value = given.get(name, error.get("input"))
        message = f"{_source(name, given, os.environ)}: {error['msg'].lower()}, not {value!r}"
        raise ValueError(message) from None
