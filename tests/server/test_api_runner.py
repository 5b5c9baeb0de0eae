"""Running the server: settings from the environment, startup failures, the JSON log format."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from _api_helpers import free_port
from fastapi import FastAPI

from mosaicstack_telemetry_server.logging_config import (
    JsonFormatter,
    configure_logging,
    redact_secrets,
)
from mosaicstack_telemetry_server.runner import (
    app_from_env,
    serve_in_thread,
    settings_from_env,
    settings_to_env,
)
from mosaicstack_telemetry_server.settings import ServerSettings

SECRET = "S3cret-pw-42"  # a made-up password that must never reach a log line


def test_settings_round_trip_through_the_environment(sqlite_url: str) -> None:
    settings = ServerSettings(
        database_url=sqlite_url,
        port=0,
        workers=5,
        log_level="debug",
        min_sample_size=9,
        stats_max_age_seconds=12.5,
        rate_limit_per_second=3.0,
        rate_limit_burst=4,
        max_body_bytes=2048,
        header_timeout=0.25,
        trusted_proxies="10.0.0.0/8,fd00::1",
        metrics_token="t0k3n",  # type: ignore[arg-type]  # pydantic makes it a SecretStr
    )
    assert settings_from_env(settings_to_env(settings)) == settings


def test_unset_or_empty_variables_keep_the_defaults(sqlite_url: str) -> None:
    settings = settings_from_env(
        {"MOSAIC_TELEMETRY_DATABASE_URL": sqlite_url, "MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE": ""}
    )
    assert settings == ServerSettings(database_url=sqlite_url)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE", "five"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "1 minute"),
        ("MOSAIC_TELEMETRY_RATE_LIMIT_BURST", "2.5"),
    ],
)
def test_unparsable_variable_is_named_in_the_error(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        settings_from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE", "0"),
        ("MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE", "1000001"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "-5"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "86400.5"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "nan"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "inf"),
        ("MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND", "0"),
        ("MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND", "-1"),
        ("MOSAIC_TELEMETRY_RATE_LIMIT_BURST", "0"),
        ("MOSAIC_TELEMETRY_AUTH_FAILURE_RATE_PER_SECOND", "0"),
        ("MOSAIC_TELEMETRY_AUTH_FAILURE_BURST", "0"),
        ("MOSAIC_TELEMETRY_MAX_BODY_BYTES", "0"),
        ("MOSAIC_TELEMETRY_MAX_BODY_BYTES", "1023"),
        ("MOSAIC_TELEMETRY_MAX_BODY_BYTES", str(64 * 1024 * 1024 + 1)),
    ],
)
def test_out_of_range_variable_is_named_in_the_error(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable} must be (between|above) "):
        settings_from_env({variable: value})


def test_settings_out_of_range_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"min_sample_size\n.*greater than or equal to 1"):
        ServerSettings(database_url="sqlite://:memory:", min_sample_size=0)


def test_worker_factory_builds_an_app_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MOSAIC_TELEMETRY_LOG_LEVEL", "warning")
    logger = logging.getLogger("mosaicstack_telemetry_server")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        assert isinstance(app_from_env(), FastAPI)
        assert logger.level == logging.WARNING
        assert isinstance(logger.handlers[0].formatter, JsonFormatter)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
        uvicorn_logger = logging.getLogger("uvicorn.error")
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def test_a_server_that_cannot_start_raises_instead_of_hanging() -> None:
    with (
        pytest.raises(RuntimeError, match="failed to start"),
        serve_in_thread(ServerSettings(database_url="mysql://nowhere/telemetry")),
    ):
        pytest.fail("the server must not be served")


def test_json_log_lines_carry_fields_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.fields = {"status": 500}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed here"
    assert line["status"] == 500
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_log_times_are_rfc3339_utc_with_milliseconds() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    record.created = 1_796_000_000.0421  # whatever the zone of the machine
    line = json.loads(JsonFormatter().format(record))
    assert line["time"] == "2026-11-30T00:53:20.042Z"
    parsed = datetime.fromisoformat(line["time"])
    assert parsed.utcoffset() == timedelta(0)


_CONFIGURED = (
    "",
    "mosaicstack_telemetry_server",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "psycopg",
    "psycopg.pool",
    "asyncio",
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back every logger configure_logging touches, so other tests keep theirs."""
    loggers = [logging.getLogger(name) for name in _CONFIGURED]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _json_lines(text: str) -> list[dict[str, Any]]:
    # Every line must parse: a plain-text line fails here.
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_sends_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("mosaicstack_telemetry_server.access").info(
        "GET /", extra={"fields": {"path": "/"}}
    )
    line = _json_lines(capsys.readouterr().err)[-1]
    assert line["path"] == "/"


@pytest.mark.usefixtures("restore_logging")
def test_library_logs_are_json_lines_without_passwords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    pool = logging.getLogger("psycopg.pool")
    pool.info("connection requested from 'x'")  # below WARNING: libraries' chatter stays out
    pool.warning("error connecting to postgresql://mosaic:%s@db:5432/telemetry", SECRET)
    logging.getLogger("psycopg").warning("bad conninfo: host=db password=%s user=mosaic", SECRET)
    logging.getLogger("uvicorn.error").info("Started server process")
    try:
        raise RuntimeError(f"cannot reach postgres://mosaic:{SECRET}@db/telemetry")
    except RuntimeError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")

    err = capsys.readouterr().err
    lines = _json_lines(err)
    assert SECRET not in err
    assert [line["logger"] for line in lines] == [
        "psycopg.pool",
        "psycopg",
        "uvicorn.error",
        "asyncio",
    ]
    assert "postgresql://mosaic:***@db:5432/telemetry" in lines[0]["message"]
    assert "password=*** user=mosaic" in lines[1]["message"]
    assert "postgres://mosaic:***@db/telemetry" in lines[3]["exception"]


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("no secret here", "no secret here"),
        ("at postgresql://u:pw@h/db.", "at postgresql://u:***@h/db."),
        ("dsn 'password=p w' x", "dsn 'password=*** w' x"),
        ("password='p w' x", "password=*** x"),
        ("sqlite:////var/lib/t.db", "sqlite:////var/lib/t.db"),
    ],
)
def test_redact_secrets_blanks_url_passwords_and_password_settings(
    text: str, redacted: str
) -> None:
    assert redact_secrets(text) == redacted


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("chatty")


def test_other_libraries_reach_stderr_as_json_through_the_root_logger() -> None:
    code = (
        "import logging\n"
        "from mosaicstack_telemetry_server.logging_config import configure_logging\n"
        "configure_logging('info')\n"
        "logging.getLogger('some.library').warning('careful: %s', 'x')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    [line] = _json_lines(done.stderr)
    assert (line["logger"], line["level"], line["message"]) == (
        "some.library",
        "warning",
        "careful: x",
    )


@pytest.mark.usefixtures("restore_logging")
def test_unreachable_postgres_logs_only_json_lines_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug")
    url = f"postgresql://mosaic:{SECRET}@127.0.0.1:{free_port()}/telemetry"
    err = ""
    with serve_in_thread(ServerSettings(database_url=url)) as base:
        assert httpx.get(f"{base}/v1/health", timeout=30).status_code == 503
        deadline = time.monotonic() + 15
        while '"logger": "psycopg.pool"' not in err:  # the pool's reconnection attempts
            assert time.monotonic() < deadline, "the pool never logged its failures"
            time.sleep(0.05)
            err += capsys.readouterr().err
    err += capsys.readouterr().err
    lines = _json_lines(err)
    assert SECRET not in err
    assert {"psycopg.pool", "uvicorn.error", "mosaicstack_telemetry_server.access"} <= {
        line["logger"] for line in lines
    }
