"""`serve`'s settings: flags, `MOSAIC_TELEMETRY_*` variables, `PORT`, their precedence,
`--print-config` (secrets masked) and errors that name where a bad value came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.cli import build_parser, main, settings_from_args, uvicorn_options
from mosaicstack_telemetry_server.guard import ENV_GUARD
from mosaicstack_telemetry_server.process_settings import ENV_PROCESS, process_settings
from mosaicstack_telemetry_server.runner import ENV_SETTINGS, serve_in_thread, settings_from_env

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
_VARIABLES = [*ENV_PROCESS.values(), *ENV_SETTINGS.values(), *ENV_GUARD.values(), "PORT"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine running the tests (a CI host may set PORT)."""
    for variable in _VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def print_config(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, object]:
    """The effective configuration `serve --print-config` prints, as a dict."""
    assert main(["serve", "--print-config", *flags]) == 0
    config: dict[str, object] = json.loads(capsys.readouterr().out)
    return config


def test_every_setting_comes_from_a_flag(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    flags = {
        "--host": "0.0.0.0",  # printed, never bound
        "--port": "9001",
        "--workers": "3",
        "--graceful-timeout": "7",
        "--log-level": "debug",
        "--min-sample-size": "9",
        "--stats-max-age": "12.5",
        "--stats-window-days": "30",
        "--rate-limit-per-second": "2.5",
        "--rate-limit-burst": "11",
        "--max-body-bytes": "4096",
        "--auth-failure-rate-per-second": "0.5",
        "--auth-failure-burst": "3",
        "--retention-days": "90",
        "--header-timeout": "4",
        "--body-timeout": "6",
        "--max-connections": "50",
        "--trusted-proxy": "10.0.0.0/8",
    }
    argv = [part for pair in flags.items() for part in pair]
    config = print_config(capsys, "--database", sqlite_url, *argv)
    for flag, raw in flags.items():
        name = flag[2:].replace("-", "_")
        name = {"stats_max_age": "stats_max_age_seconds", "trusted_proxy": "trusted_proxies"}.get(
            name, name
        )
        assert str(config[name]) == raw or config[name] == float(raw), flag
    assert config["database_url"] == sqlite_url


def test_every_setting_comes_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {
        "MOSAIC_TELEMETRY_HOST": "::1",
        "MOSAIC_TELEMETRY_PORT": "9002",
        "MOSAIC_TELEMETRY_WORKERS": "2",
        "MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT": "0",
        "MOSAIC_TELEMETRY_LOG_LEVEL": "warning",
        "MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND": "3",
        "MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "4",
        "MOSAIC_TELEMETRY_MAX_BODY_BYTES": "2048",
        "MOSAIC_TELEMETRY_AUTH_FAILURE_BURST": "5",
        "MOSAIC_TELEMETRY_RETENTION_DAYS": "7",
        "MOSAIC_TELEMETRY_BODY_TIMEOUT": "8",
        "MOSAIC_TELEMETRY_DATABASE_URL": "sqlite:///tmp/never-opened.db",
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    config = print_config(capsys)
    assert config["host"] == "::1"
    assert config["port"] == 9002
    assert config["workers"] == 2
    assert config["graceful_timeout"] == 0
    assert config["log_level"] == "warning"
    assert config["rate_limit_per_second"] == 3.0
    assert config["rate_limit_burst"] == 4
    assert config["max_body_bytes"] == 2048
    assert config["auth_failure_burst"] == 5
    assert config["retention_days"] == 7
    assert config["body_timeout"] == 8.0
    assert config["database_url"] == "sqlite:///tmp/never-opened.db"
    # A flag wins over its variable.
    assert (
        print_config(capsys, "--rate-limit-burst", "6", "--workers", "1")["rate_limit_burst"] == 6
    )


def test_defaults_when_nothing_is_given(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    config = print_config(capsys, "--database", sqlite_url)
    assert config == {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 1,
        "graceful_timeout": 30,
        "log_level": "info",
        "database_url": sqlite_url,
        "min_sample_size": 5,
        "stats_max_age_seconds": 300.0,
        "stats_window_days": 14,
        "rate_limit_per_second": 50.0,
        "rate_limit_burst": 100,
        "max_body_bytes": 1024 * 1024,
        "auth_failure_rate_per_second": 1.0,
        "auth_failure_burst": 20,
        "trusted_proxies": "",
        "metrics_token": "",
        "retention_days": 0,
        "header_timeout": 10.0,
        "body_timeout": 30.0,
        "max_connections": 0,
    }


ports = st.one_of(st.none(), st.integers(0, 65535))


@settings(max_examples=60, deadline=None)
@given(flag=ports, variable=ports, platform=ports)
def test_port_precedence_is_flag_then_variable_then_port_then_default(
    flag: int | None, variable: int | None, platform: int | None
) -> None:
    saved = {name: os.environ.pop(name, None) for name in ("MOSAIC_TELEMETRY_PORT", "PORT")}
    try:
        for name, value in (("MOSAIC_TELEMETRY_PORT", variable), ("PORT", platform)):
            if value is not None:
                os.environ[name] = str(value)
        expected = next((p for p in (flag, variable, platform) if p is not None), 8000)
        assert process_settings({"port": flag}).port == expected
    finally:
        for name, old in saved.items():
            os.environ.pop(name, None)
            if old is not None:
                os.environ[name] = old


def test_port_alone_is_honoured_by_the_parser(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "8123")
    assert print_config(capsys)["port"] == 8123
    monkeypatch.setenv("MOSAIC_TELEMETRY_PORT", "8124")
    assert print_config(capsys)["port"] == 8124
    assert print_config(capsys, "--port", "8125")["port"] == 8125


@pytest.mark.parametrize(
    ("environment", "argv", "message"),
    [
        ({"PORT": "http"}, [], "PORT: input should be a valid integer"),
        ({"PORT": "80", "MOSAIC_TELEMETRY_PORT": "70000"}, [], "MOSAIC_TELEMETRY_PORT: input"),
        ({"MOSAIC_TELEMETRY_WORKERS": "65"}, [], "MOSAIC_TELEMETRY_WORKERS: input should be less"),
        ({"MOSAIC_TELEMETRY_LOG_LEVEL": "loud"}, [], "MOSAIC_TELEMETRY_LOG_LEVEL: input should be"),
        ({"MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT": "-1"}, [], "MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT:"),
        ({"MOSAIC_TELEMETRY_HOST": "x" * 256}, [], "MOSAIC_TELEMETRY_HOST: string should have"),
        ({}, ["--host", ""], "--host: string should have at least 1 character"),
        (
            {"MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "0"},
            [],
            "MOSAIC_TELEMETRY_RATE_LIMIT_BURST must be between 1 and 1000000",
        ),
        ({}, ["--rate-limit-per-second", "0"], "--rate-limit-per-second must be above 0"),
        ({"MOSAIC_TELEMETRY_HEADER_TIMEOUT": "0"}, [], "MOSAIC_TELEMETRY_HEADER_TIMEOUT: header"),
        ({"MOSAIC_TELEMETRY_MAX_CONNECTIONS": "-1"}, [], "MOSAIC_TELEMETRY_MAX_CONNECTIONS:"),
    ],
)
def test_a_bad_value_names_its_source_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert main(["serve", "--print-config", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_a_flag_out_of_range_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--max-body-bytes", "10"])
    assert stopped.value.code == 2
    assert "argument --max-body-bytes: must be between 1024 and 67108864" in capsys.readouterr().err


def test_print_config_masks_secrets_and_serves_nothing(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-9f8e\n")
    url = "postgresql://telemetry:hunter2@127.0.0.1:9/db?password=hunter3"  # nothing listens
    for extra, secret in (
        ({"MOSAIC_TELEMETRY_METRICS_TOKEN": "env-token-1a2b"}, "env-token-1a2b"),
        ({}, "file-token-9f8e"),
    ):
        argv = ["serve", "--print-config", "--database", url]
        if not extra:
            argv += ["--metrics-token-file", str(token_file)]
        result = subprocess.run(
            [EXE, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **extra},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        assert config["metrics_token"] == "***"
        assert config["database_url"] == "postgresql://telemetry:***@127.0.0.1:9/db?password=***"
        for leaked in (secret, "hunter2", "hunter3"):
            assert leaked not in result.stdout + result.stderr
        assert "serving" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"", "one printable token"), (b"a" * 5000, "at most 4096 bytes")],
)
def test_a_bad_metrics_token_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
    assert main(["serve", "--print-config", "--metrics-token-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--metrics-token-file: {path}" in err or "--metrics-token-file: cannot read" in err
    assert message in err


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics-token"
    path.write_text("  from-a-file-5c6d  \n")
    return path


def test_the_token_file_guards_metrics(token_file: Path, sqlite_url: str) -> None:
    args = build_parser().parse_args(
        ["serve", "--database", sqlite_url, "--metrics-token-file", str(token_file)]
    )
    with serve_in_thread(settings_from_args(args)) as url:
        assert httpx.get(url + "/metrics").status_code == 401
        allowed = httpx.get(url + "/metrics", headers={"Authorization": "Bearer from-a-file-5c6d"})
        assert allowed.status_code == 200


def test_workers_get_flags_and_variables_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, token_file: Path, sqlite_url: str
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_WORKERS", "2")
    monkeypatch.setenv("MOSAIC_TELEMETRY_LOG_LEVEL", "error")
    monkeypatch.setenv("MOSAIC_TELEMETRY_AUTH_FAILURE_BURST", "9")
    argv = ["serve", "--database", sqlite_url, "--rate-limit-burst", "12"]
    args = build_parser().parse_args([*argv, "--metrics-token-file", str(token_file)])
    settings = settings_from_args(args)
    target, options, environment = uvicorn_options(args, settings)
    assert target == "mosaicstack_telemetry_server.runner:app_from_env"
    assert options["workers"] == 2
    assert options["log_level"] == "error"
    assert environment["MOSAIC_TELEMETRY_LOG_LEVEL"] == "error"
    rebuilt = settings_from_env(environment)
    assert rebuilt == settings
    assert (rebuilt.rate_limit_burst, rebuilt.auth_failure_burst) == (12, 9)
    assert rebuilt.metrics_token == "from-a-file-5c6d"
