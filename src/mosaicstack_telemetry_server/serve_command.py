"""`mosaic-telemetry serve`: its flags, made from `ServerSettings`, and the uvicorn it runs.

Each flag is read off the settings model (name, metavar, help, range), so a flag, its variable
and its check cannot drift apart; the parser checks a value with the field's own constraints,
and `load_settings` lays the flags given over the `MOSAIC_TELEMETRY_*` variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast, get_args, get_origin

from pydantic import SecretStr, TypeAdapter, ValidationError

from mosaicstack_telemetry_server.proxies import parse_trusted_proxies
from mosaicstack_telemetry_server.settings import (
    MAX_TOKEN_BYTES,
    ServerSettings,
    cli_of,
    env_names,
    load_settings,
    settings_to_env,
)
from mosaicstack_telemetry_server.settings_doc import default_text
from mosaicstack_telemetry_server.settings_text import problem
from mosaicstack_telemetry_server.storage import redact_url

__all__ = [
    "add_serve_arguments",
    "database_help",
    "effective_config",
    "run_serve",
    "settings_from_args",
    "uvicorn_options",
]


def _help(name: str, note: str = "") -> str:
    field = ServerSettings.model_fields[name]
    variables = ", else ".join("$" + variable for variable in env_names(name))
    text = f"{str(field.description).rstrip('.')} ({note}default {default_text(name)}; {variables})"
    return text.replace("`", "").replace("%", "%%")


def _parser(name: str) -> Callable[[str], Any]:
    """The flag's type: the field's own type and constraints; errors say the range."""
    field = ServerSettings.model_fields[name]
    annotated = cast("Any", Annotated)[(field.annotation, *field.metadata)]
    adapter: TypeAdapter[Any] = TypeAdapter(annotated)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(problem(field, exc.errors()[0])) from None

    return parse


def _trusted_proxy(text: str) -> str:
    try:
        return ",".join(parse_trusted_proxies(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def database_help() -> str:
    """The help of `--database`, which every command that opens the database has."""
    return _help("database_url")


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    """One flag per `ServerSettings` field, and `--print-config`."""
    for name in ServerSettings.model_fields:
        _add_flag(serve, name)
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as JSON, secrets masked, and exit",
    )


def _add_flag(serve: argparse.ArgumentParser, name: str) -> None:
    field = ServerSettings.model_fields[name]
    cli = cli_of(name)
    flag, metavar = str(cli["flag"]), str(cli["metavar"]) or None
    if name == "database_url":  # the same flag as every other command's
        serve.add_argument(flag, dest="database", metavar=metavar, help=_help(name))
    elif name == "trusted_proxies":  # repeatable, one network each
        note = str(cli["flag_note"]) + "; "
        serve.add_argument(
            flag,
            dest=name,
            metavar=metavar,
            action="append",
            type=_trusted_proxy,
            help=_help(name, note),
        )
    elif name == "metrics_token":  # a path: a flag's value would show in the process list
        serve.add_argument(
            flag,
            dest="metrics_token_file",
            metavar=metavar,
            help="file holding the bearer token GET /metrics requires; a file, not a flag, "
            "as a flag's value shows in the process list (default none: /metrics is open; "
            f"${env_names(name)[0]} holds the token itself)",
        )
    elif get_origin(field.annotation) is Literal:
        serve.add_argument(flag, dest=name, choices=get_args(field.annotation), help=_help(name))
    else:
        serve.add_argument(flag, dest=name, metavar=metavar, type=_parser(name), help=_help(name))


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The flags given (any command's `--database`, every flag of `serve`) over the variables.

    Raises ValueError naming the flag or variable of a value that does not parse or is out of
    range (a Namespace may be built by hand, so the flags are checked again here).
    """
    flags: dict[str, Any] = {
        name: getattr(args, name, None) for name in ServerSettings.model_fields
    }
    flags["database_url"] = getattr(args, "database", None) or None  # empty: not given
    proxies = getattr(args, "trusted_proxies", None)
    flags["trusted_proxies"] = ",".join(proxies) if proxies else None
    token_file = getattr(args, "metrics_token_file", None)
    flags["metrics_token"] = _read_token(token_file) if token_file else None
    return load_settings(flags)


def _read_token(path: str) -> str:
    """The token in the file at `path` (surrounding whitespace removed)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--metrics-token-file: cannot read {path}: {exc.strerror}") from None
    token = raw.decode("utf-8", errors="replace").strip()
    if len(raw) > MAX_TOKEN_BYTES or not token or not token.isprintable():
        raise ValueError(
            f"--metrics-token-file: {path} must hold one printable token of at most "
            f"{MAX_TOKEN_BYTES} bytes"
        )
    return token


def effective_config(settings: ServerSettings) -> dict[str, Any]:
    """Every `serve` setting's effective value, by setting name; secrets masked."""
    config: dict[str, Any] = {}
    for name in ServerSettings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        config[name] = value
    config["database_url"] = redact_url(settings.database_url)
    return config


def uvicorn_options(settings: ServerSettings) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """What `serve` hands to `uvicorn.run`: (app or import string, keyword arguments, and the
    environment variables worker processes need). No I/O."""
    from mosaicstack_telemetry_server.guard import guarded_protocol

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "log_level": settings.log_level,
        "access_log": False,  # ours is structured (logging_config.py)
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "proxy_headers": False,  # the app decides whom to believe (proxies.py)
        # uvicorn's h11 protocol plus request deadlines and a connection cap (guard.py).
        "http": guarded_protocol(settings),
    }
    if settings.workers == 1:
        from mosaicstack_telemetry_server.app import create_app

        return create_app(settings), options, {}
    # Each worker process builds its own app and guard from the environment (uvicorn starts
    # them from import strings): stateless processes sharing the database.
    options.update(
        factory=True,
        workers=settings.workers,
        http="mosaicstack_telemetry_server.guard:GuardedH11Protocol",
    )
    return "mosaicstack_telemetry_server.runner:app_from_env", options, settings_to_env(settings)


def run_serve(args: argparse.Namespace, reachable: Callable[[str], Any]) -> int:
    """The `serve` command: `--print-config`, or check the database and serve until stopped."""
    import uvicorn

    from mosaicstack_telemetry_server.logging_config import configure_logging
    from mosaicstack_telemetry_server.metrics import multiprocess_folder

    settings = settings_from_args(args)
    if args.print_config:
        print(json.dumps(effective_config(settings), indent=2))
        return 0
    # A database that cannot be reached at start is one clear line and exit 1, before any
    # worker starts (a server already running rides out an outage: runtime.py).
    reachable(settings.database_url).close()
    configure_logging(settings.log_level)
    address = f"http://{settings.host}:{settings.port}"
    print(f"serving {redact_url(settings.database_url)} on {address}", file=sys.stderr)
    app, options, environment = uvicorn_options(settings)
    os.environ.update(environment)
    with multiprocess_folder(settings.workers):
        uvicorn.run(app, **options)
    return 0
