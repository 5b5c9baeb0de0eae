"""Every `serve` setting in one pydantic-settings model: name, default, range, variable, flag.

Precedence: a flag (passed to the constructor) > its `MOSAIC_TELEMETRY_*` variable > `PORT`
(the port only, as platforms such as Heroku or Cloud Run set it) > the default. An empty
variable counts as unset. Worker processes rebuild the parent's settings from the variables
`settings_to_env` writes. `load_settings` turns a validation error into one line that names
where the bad value came from, as the user wrote it: the flag or the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mosaicstack_telemetry_server.proxies import parse_trusted_proxies
from mosaicstack_telemetry_server.settings_text import problem

__all__ = [
    "DEFAULT_GRACEFUL_SECONDS",
    "ENV_DATABASE_URL",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "MAX_TOKEN_BYTES",
    "MAX_WORKERS",
    "ServerSettings",
    "cli_of",
    "default_database_url",
    "env_names",
    "flag_of",
    "load_settings",
    "settings_to_env",
]

ENV_PREFIX = "MOSAIC_TELEMETRY_"
ENV_DATABASE_URL = "MOSAIC_TELEMETRY_DATABASE_URL"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
MAX_WORKERS = 64
# How long `serve` lets in-flight requests finish after SIGTERM/SIGINT.
DEFAULT_GRACEFUL_SECONDS = 30
# A metrics token longer than this is not a token (a token file is not read past it either).
MAX_TOKEN_BYTES = 4096
# A URL longer than this is a mistake (PostgreSQL's own connection strings stay far below).
_MAX_URL_CHARS = 4096
# Fields whose value an error message never shows: a token, a URL that may hold a password.
_HIDDEN = frozenset({"database_url", "metrics_token"})


def default_database_url() -> str:
    """A SQLite file in the user's data directory (`MOSAIC_TELEMETRY_DATABASE_URL` unset)."""
    from platformdirs import user_data_dir

    path = Path(user_data_dir("mosaicstack-telemetry", appauthor=False)) / "telemetry.db"
    return f"sqlite:///{path}"


def _cli(
    flag: str,
    metavar: str = "",
    *,
    default: str = "",
    allowed: str = "",
    flag_note: str = "",
    env_note: str = "",
) -> dict[str, Any]:
    """A field's command-line flag, and what its docs row says beyond its constraints."""
    return {
        "flag": flag,
        "metavar": metavar,
        "default_text": default,
        "allowed": allowed,
        "flag_note": flag_note,
        "env_note": env_note,
    }


class ServerSettings(BaseSettings):
    """Everything `serve` can be told (see the module's docstring for where values come from).

    Built in code (tests, the demo, benchmarks): `ServerSettings(database_url=...)`; the
    `MOSAIC_TELEMETRY_*` variables fill in what the constructor is not given.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        populate_by_name=True,  # flags and code give fields by name
        extra="forbid",  # a misspelt keyword is an error (unknown variables are ignored)
        frozen=True,  # one process's settings, shared by its app, guard and runtime
    )

    # The serving process.
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=255,
        description="Interface to listen on (`0.0.0.0` for all).",
        json_schema_extra=_cli("--host"),
    )
    port: int = Field(
        8000,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("MOSAIC_TELEMETRY_PORT", "PORT"),
        description="TCP port.",
        json_schema_extra=_cli("--port"),
    )
    database_url: str = Field(
        default_factory=default_database_url,
        min_length=1,
        max_length=_MAX_URL_CHARS,
        description="`sqlite:///path` or `postgresql://...`.",
        json_schema_extra=_cli(
            "--database",
            "URL",
            default="SQLite file in the user data dir",
            allowed=f"at most {_MAX_URL_CHARS:,} characters",
        ),
    )
    workers: int = Field(
        1,
        ge=1,
        le=MAX_WORKERS,
        description="Worker processes.",
        json_schema_extra=_cli("--workers", "N"),
    )
    graceful_timeout: int = Field(
        DEFAULT_GRACEFUL_SECONDS,
        ge=0,
        le=3600,
        description="How long in-flight requests may finish on shutdown.",
        json_schema_extra=_cli("--graceful-timeout", "SECONDS"),
    )
    log_level: LogLevel = Field(
        "info", description="Level of the JSON log lines.", json_schema_extra=_cli("--log-level")
    )
    # Predictions.
    min_sample_size: int = Field(
        5,
        ge=1,
        le=1_000_000,
        description="Fewest events a fallback level needs.",
        json_schema_extra=_cli("--min-sample-size", "N"),
    )
    stats_max_age_seconds: float = Field(
        300.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        validation_alias="MOSAIC_TELEMETRY_STATS_MAX_AGE",
        description="Oldest precomputed statistics may be (0 = always fresh).",
        json_schema_extra=_cli("--stats-max-age", "SECONDS"),
    )
    stats_window_days: int = Field(
        14,
        ge=0,
        le=3650,
        description="Days of events a prediction stands on, ending at the task type's newest "
        "event (0 = all days; quiet groups reach further back to 100 events).",
        json_schema_extra=_cli("--stats-window-days", "DAYS"),
    )
    # Per-key token bucket: above 0, as a rate of 0 would refuse every request.
    rate_limit_per_second: float = Field(
        50.0,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Sustained requests per second per API key, per process.",
        json_schema_extra=_cli("--rate-limit-per-second", "R"),
    )
    rate_limit_burst: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Burst size of that bucket.",
        json_schema_extra=_cli("--rate-limit-burst", "N"),
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Body limit after decompression (the contract's 1 MiB).",
        json_schema_extra=_cli("--max-body-bytes", "N"),
    )
    # Per-client-address bucket for failed authentications: each unknown key costs a database
    # lookup, so a flood of them is refused (429) before reaching the database.
    auth_failure_rate_per_second: float = Field(
        1.0,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Sustained failed authentications per second per client address, per process.",
        json_schema_extra=_cli("--auth-failure-rate-per-second", "R"),
    )
    auth_failure_burst: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="Burst size of that bucket.",
        json_schema_extra=_cli("--auth-failure-burst", "N"),
    )
    # Slow and excess connections (guard.py), per worker process.
    header_timeout: float = Field(
        10.0,
        ge=0.1,
        le=3600,
        allow_inf_nan=False,
        description="Time a connection has to send a request's head.",
        json_schema_extra=_cli("--header-timeout", "SECONDS"),
    )
    body_timeout: float = Field(
        30.0,
        ge=0.1,
        le=3600,
        allow_inf_nan=False,
        description="Time a request has to send its body.",
        json_schema_extra=_cli("--body-timeout", "SECONDS"),
    )
    max_connections: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Open connections per process; never above the descriptor limit less a "
        "reserve.",
        json_schema_extra=_cli("--max-connections", "N", default="`0` (auto)"),
    )
    # Reverse proxies whose `X-Forwarded-For` is believed (proxies.py); empty: the TCP peer is
    # the client. Kept as the comma-separated text it is given in, normalised.
    trusted_proxies: str = Field(
        "",
        max_length=65_536,
        description="Reverse proxies whose `X-Forwarded-For` names the client.",
        json_schema_extra=_cli(
            "--trusted-proxy",
            "CIDR",
            default="none",
            allowed="valid CIDRs",
            flag_note="repeatable",
            env_note="comma-separated",
        ),
    )
    # An OTLP task without a call for this long is closed and stored (otlp/closer.py).
    otlp_task_idle: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Seconds without a call after which an OTLP task closes.",
        json_schema_extra=_cli("--otlp-task-idle", "SECONDS"),
    )
    # Events older than this many days are deleted in the background (retention.py).
    retention_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="Delete events older than N days, in the background.",
        json_schema_extra=_cli("--retention-days", "N", default="`0` (keep forever)"),
    )
    # Budgets: how often every budget's status is checked for alerts, besides after each batch.
    budget_check_interval: float = Field(
        30.0,
        ge=0.05,
        le=3600,
        allow_inf_nan=False,
        description="Seconds between checks of the budgets for alerts (each ingested batch "
        "also triggers one); also the longest wait of a due webhook retry.",
        json_schema_extra=_cli("--budget-check-interval", "SECONDS"),
    )
    # Bearer token `GET /metrics` requires; empty: /metrics is open (bind it privately).
    metrics_token: SecretStr = Field(
        SecretStr(""),
        max_length=MAX_TOKEN_BYTES,
        description="Bearer token `GET /metrics` requires. No `--metrics-token`: a flag's "
        "value would show in `ps`.",
        json_schema_extra=_cli(
            "--metrics-token-file",
            "PATH",
            default="none (`/metrics` open)",
            allowed=f"one printable token, at most {MAX_TOKEN_BYTES} bytes",
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        # Here, not in each worker process: a bad value stops the command at once.
        return ",".join(parse_trusted_proxies(value))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The constructor (flags, code) over the variables; no `.env` or secrets files."""
        environ = _ENVIRON.get()
        if environ is None:
            return init_settings, env_settings
        return init_settings, _MappingEnvSource(settings_cls, environ)


# The variables `load_settings` reads in place of `os.environ` (a worker's given environment,
# a test's), for the construction under way in this thread or task only.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("mosaic_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' own variable reading, over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # The source's public table of variables, read as it reads os.environ: names without
        # case (the model's config), an empty value as unset.
        self.env_vars = {name.lower(): value for name, value in environ.items() if value != ""}


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def _field(name: str) -> FieldInfo:
    return ServerSettings.model_fields[name]


def cli_of(name: str) -> dict[str, Any]:
    """The field `name`'s flag, metavar and docs text (`_cli` above)."""
    extra = _field(name).json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def flag_of(name: str) -> str:
    """The command-line flag that sets the field `name` (`--stats-max-age`)."""
    return str(cli_of(name)["flag"])


def env_names(name: str) -> tuple[str, ...]:
    """The variables that set the field `name`, the first one winning."""
    alias = _field(name).validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return (alias,)
    return (ENV_PREFIX + name.upper(),)


def _source(name: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Where the value of `name` came from, as the user wrote it."""
    if name in flags:
        return flag_of(name)
    given = {variable.upper() for variable, value in environ.items() if value != ""}
    return next((variable for variable in env_names(name) if variable in given), name)


def _field_name(loc: tuple[int | str, ...]) -> str:
    """The field an error's location names (a variable's alias names it from the environment)."""
    first = str(loc[0]) if loc else ""
    if first in ServerSettings.model_fields:
        return first
    return next(
        (name for name in ServerSettings.model_fields if first.upper() in env_names(name)), first
    )


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """The flags given (None: not given) over the variables of `environ` (default: the process's).

    Raises ValueError naming the flag or variable whose value does not parse or is out of range.
    """
    given = {name: value for name, value in (flags or {}).items() if value is not None}
    try:
        with _reading(environ):
            return ServerSettings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = _field_name(error["loc"])
        if name not in ServerSettings.model_fields:
            raise ValueError(f"{name}: {error['msg']}") from None
        source = _source(name, given, os.environ if environ is None else environ)
        text = problem(_field(name), error, hide_value=name in _HIDDEN)
        joined = f"{source} {text}" if text.startswith("must be ") else f"{source}: {text}"
        raise ValueError(joined) from None


def settings_to_env(settings: ServerSettings) -> dict[str, str]:
    """The variables that make `load_settings` rebuild `settings` (for worker processes)."""
    values: dict[str, str] = {}
    for name in ServerSettings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        values[env_names(name)[0]] = str(value)
    return values
