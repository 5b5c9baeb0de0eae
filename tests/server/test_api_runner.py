"""Running the server: settings from the environment, startup failures, the JSON log format."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from fastapi import FastAPI

from mosaicstack_telemetry_server.logging_config import JsonFormatter, configure_logging
from mosaicstack_telemetry_server.runner import (
    app_from_env,
    serve_in_thread,
    settings_from_env,
    settings_to_env,
)
from mosaicstack_telemetry_server.settings import ServerSettings


def test_settings_round_trip_through_the_environment(sqlite_url: str) -> None:
    settings = ServerSettings(
        database_url=sqlite_url,
        min_sample_size=9,
        stats_max_age_seconds=12.5,
        rate_limit_per_second=3.0,
        rate_limit_burst=4,
        max_body_bytes=2048,
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


def test_configure_logging_sends_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("mosaicstack_telemetry_server")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        configure_logging("info")
        logging.getLogger("mosaicstack_telemetry_server.access").info(
            "GET /", extra={"fields": {"path": "/"}}
        )
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["path"] == "/"
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
        uvicorn_logger = logging.getLogger("uvicorn.error")
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
