"""TelemetryConfig: defaults, environment-variable rules, validate() messages, secret repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mosaicstack_telemetry import TelemetryConfig

from .conftest import API_KEY, INSTANCE_ID


def _valid(**overrides: object) -> TelemetryConfig:
    values: dict[str, object] = {
        "server_url": "https://telemetry.example.com",
        "api_key": API_KEY,
        "instance_id": INSTANCE_ID,
    }
    values.update(overrides)
    return TelemetryConfig(**values)  # type: ignore[arg-type]


def test_defaults_are_the_reference_values() -> None:
    config = TelemetryConfig()
    assert dataclasses.is_dataclass(config)
    assert (config.server_url, config.api_key, config.instance_id) == ("", "", "")
    assert config.enabled is True
    assert config.submit_interval_seconds == 300.0
    assert config.max_queue_size == 1000
    assert config.batch_size == 100
    assert config.request_timeout_seconds == 10.0
    assert config.prediction_cache_ttl_seconds == 21600.0
    assert config.dry_run is False
    assert config.max_retries == 3
    assert config.user_agent == "mosaicstack-telemetry-python/0.1.0"


def test_trailing_slashes_are_stripped() -> None:
    assert TelemetryConfig(server_url="https://t.example.com///").server_url == (
        "https://t.example.com"
    )


def test_env_vars_fill_only_empty_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_SERVER_URL", "https://env.example.com/")
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", "e" * 64)
    monkeypatch.setenv("MOSAIC_TELEMETRY_INSTANCE_ID", INSTANCE_ID)
    from_env = TelemetryConfig()
    assert from_env.server_url == "https://env.example.com"
    assert from_env.api_key == "e" * 64
    assert from_env.instance_id == INSTANCE_ID

    explicit = TelemetryConfig(
        server_url="https://mine.example.com",
        api_key=API_KEY,
        instance_id="00000000-0000-4000-8000-000000000000",
    )
    assert explicit.server_url == "https://mine.example.com"
    assert explicit.api_key == API_KEY
    assert explicit.instance_id == "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        (" yes ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("", False),
        ("on", False),
    ],
)
def test_enabled_env_var_always_overrides_the_constructor(
    monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_ENABLED", value)
    assert TelemetryConfig(enabled=True).enabled is enabled
    assert TelemetryConfig(enabled=False).enabled is enabled


def test_valid_config_has_no_errors() -> None:
    assert _valid().validate() == []
    assert _valid(server_url="http://127.0.0.1:8000", batch_size=1).validate() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server_url": ""}, "server_url is required"),
        ({"server_url": "ftp://x"}, "server_url must start with http:// or https://"),
        ({"api_key": ""}, "api_key must be a 64-character hex string"),
        ({"api_key": "g" * 64}, "api_key must be a 64-character hex string"),
        ({"api_key": "a" * 63}, "api_key must be a 64-character hex string"),
        ({"instance_id": "not-a-uuid"}, "instance_id must be a valid UUID string"),
        (
            {"submit_interval_seconds": 0},
            "submit_interval_seconds must be a finite positive number",
        ),
        ({"max_queue_size": 0}, "max_queue_size must be positive"),
        ({"batch_size": 0}, "batch_size must be between 1 and 100"),
        ({"batch_size": 101}, "batch_size must be between 1 and 100"),
        (
            {"request_timeout_seconds": -1.0},
            "request_timeout_seconds must be a finite positive number",
        ),
        (
            {"submit_interval_seconds": float("inf")},
            "submit_interval_seconds must be a finite positive number",
        ),
        (
            {"submit_interval_seconds": float("nan")},
            "submit_interval_seconds must be a finite positive number",
        ),
        (
            {"request_timeout_seconds": float("inf")},
            "request_timeout_seconds must be a finite positive number",
        ),
        (
            {"request_timeout_seconds": float("nan")},
            "request_timeout_seconds must be a finite positive number",
        ),
    ],
)
def test_validate_names_each_problem(overrides: dict[str, object], message: str) -> None:
    assert _valid(**overrides).validate() == [message]


def test_validate_never_echoes_the_key() -> None:
    secret = "not-hex-but-secret-" + "z" * 45
    errors = _valid(api_key=secret).validate()
    assert errors
    assert all(secret not in error for error in errors)


def test_repr_masks_the_key() -> None:
    text = repr(_valid())
    assert API_KEY not in text
    assert "api_key='***'" in text
    assert "api_key=''" in repr(TelemetryConfig())


def test_delivery_settings_have_their_defaults() -> None:
    config = TelemetryConfig()
    assert config.shutdown_timeout_seconds == 2.0
    assert config.spool_dir is None
    assert config.spool_max_bytes == 64 * 1024 * 1024


def test_delivery_env_vars_fill_only_fields_left_at_their_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT", "0.8")
    monkeypatch.setenv("MOSAIC_TELEMETRY_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("MOSAIC_TELEMETRY_SPOOL_MAX_BYTES", "2000000")
    from_env = _valid()
    assert from_env.shutdown_timeout_seconds == 0.8
    assert from_env.spool_dir == str(tmp_path)
    assert from_env.spool_max_bytes == 2_000_000
    assert from_env.validate() == []
    explicit = _valid(shutdown_timeout_seconds=5.0, spool_dir="/elsewhere", spool_max_bytes=10**7)
    assert (explicit.shutdown_timeout_seconds, explicit.spool_dir, explicit.spool_max_bytes) == (
        5.0,
        "/elsewhere",
        10**7,
    )


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT", "soon", "shutdown_timeout_seconds"),
        ("MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT", "-1", "shutdown_timeout_seconds"),
        ("MOSAIC_TELEMETRY_SPOOL_MAX_BYTES", "lots", "spool_max_bytes"),
        ("MOSAIC_TELEMETRY_SPOOL_MAX_BYTES", "10", "spool_max_bytes"),
    ],
)
def test_a_bad_delivery_env_var_is_named_by_validate(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    errors = _valid().validate()
    assert len(errors) == 1
    assert errors[0].startswith(field)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shutdown_timeout_seconds": 0}, "shutdown_timeout_seconds must be"),
        ({"shutdown_timeout_seconds": float("inf")}, "shutdown_timeout_seconds must be"),
        ({"shutdown_timeout_seconds": 301.0}, "shutdown_timeout_seconds must be"),
        ({"shutdown_timeout_seconds": True}, "shutdown_timeout_seconds must be"),
        ({"spool_max_bytes": 1024}, "spool_max_bytes must be"),
        ({"spool_max_bytes": 1.5e9}, "spool_max_bytes must be"),
        ({"spool_dir": 42}, "spool_dir must be"),
    ],
)
def test_validate_names_each_delivery_problem(overrides: dict[str, object], message: str) -> None:
    errors = _valid(**overrides).validate()
    assert len(errors) == 1
    assert errors[0].startswith(message)


def test_a_bad_budget_falls_back_to_the_default_at_run_time() -> None:
    from mosaicstack_telemetry._settings import Settings

    settings = Settings.from_config(_valid(shutdown_timeout_seconds=-3, spool_max_bytes="x"))
    assert settings.shutdown_timeout_seconds == 2.0
    assert settings.spool_max_bytes == 64 * 1024 * 1024
    assert Settings.from_config(_valid(spool_dir="~/spool")).spool_dir == Path.home() / "spool"
