"""`serve`'s settings: flags, `MOSAIC_TELEMETRY_*` variables, `PORT`, their precedence,
`--print-config` (secrets masked) and errors that name where a bad value came from."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from _api_helpers import free_port, make_event, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.cli import build_parser, main, settings_from_args, uvicorn_options
from mosaicstack_telemetry_server.runner import serve_in_thread, settings_from_env
from mosaicstack_telemetry_server.settings import (
    ServerSettings,
    env_names,
    flag_of,
    load_settings,
    settings_to_env,
)
from mosaicstack_telemetry_server.settings_doc import config_table
from mosaicstack_telemetry_server.settings_text import bounds, format_number

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
_VARIABLES = [variable for name in ServerSettings.model_fields for variable in env_names(name)]


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
        "otlp_task_idle": 300.0,
        "retention_days": 0,
        "budget_check_interval": 30.0,
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
        assert load_settings({"port": flag}).port == expected
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
        ({"PORT": "http"}, [], "PORT must be an integer between 0 and 65535, not 'http'"),
        (
            {"PORT": "80", "MOSAIC_TELEMETRY_PORT": "70000"},
            [],
            "MOSAIC_TELEMETRY_PORT must be between 0 and 65535, not '70000'",
        ),
        ({"MOSAIC_TELEMETRY_WORKERS": "65"}, [], "MOSAIC_TELEMETRY_WORKERS must be between 1 and"),
        ({"MOSAIC_TELEMETRY_LOG_LEVEL": "loud"}, [], "MOSAIC_TELEMETRY_LOG_LEVEL: input should be"),
        ({"MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT": "-1"}, [], "MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT must"),
        ({"MOSAIC_TELEMETRY_HOST": "x" * 256}, [], "MOSAIC_TELEMETRY_HOST: string should have"),
        ({}, ["--host", ""], "--host: string should have at least 1 character"),
        (
            {"MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "0"},
            [],
            "MOSAIC_TELEMETRY_RATE_LIMIT_BURST must be between 1 and 1000000",
        ),
        ({}, ["--rate-limit-per-second", "0"], "--rate-limit-per-second: must be above 0"),
        (
            {"MOSAIC_TELEMETRY_HEADER_TIMEOUT": "0"},
            [],
            "MOSAIC_TELEMETRY_HEADER_TIMEOUT must be between 0.1 and 3600, not '0'",
        ),
        ({"MOSAIC_TELEMETRY_MAX_CONNECTIONS": "-1"}, [], "MOSAIC_TELEMETRY_MAX_CONNECTIONS must"),
        ({"MOSAIC_TELEMETRY_METRICS_TOKEN": "t" * 4097}, [], "MOSAIC_TELEMETRY_METRICS_TOKEN:"),
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
    try:
        status = main(["serve", "--print-config", *argv])
    except SystemExit as exc:  # a flag: refused by the parser, with its usage
        status = int(exc.code or 0)
    assert status == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_a_flag_out_of_range_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--max-body-bytes", "10"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-body-bytes: must be between 1024 and 67108864, not '10'" in err


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
    target, options, environment = uvicorn_options(settings)
    assert target == "mosaicstack_telemetry_server.runner:app_from_env"
    assert options["workers"] == 2
    assert options["log_level"] == "error"
    assert environment["MOSAIC_TELEMETRY_LOG_LEVEL"] == "error"
    rebuilt = settings_from_env(environment)
    assert rebuilt == settings
    assert (rebuilt.rate_limit_burst, rebuilt.auth_failure_burst) == (12, 9)
    assert rebuilt.metrics_token.get_secret_value() == "from-a-file-5c6d"


DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"
# Fields with a numeric range, which every error past either end must name.
RANGED = [name for name, field in ServerSettings.model_fields.items() if bounds(field)]


def test_the_docs_table_is_the_model() -> None:
    text = DOCS.read_text(encoding="utf-8")
    marked = r"<!-- settings table:.*?-->\n(.*?)<!-- end of settings table -->"
    table = re.search(marked, text, re.S)
    assert table, "docs/server.md lost its settings table markers"
    assert table.group(1) == config_table()  # regenerate: python -m ...settings_doc


def test_every_field_has_a_flag_a_variable_and_a_printed_value(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    usage = capsys.readouterr().out
    for name in ServerSettings.model_fields:
        assert flag_of(name) in usage, name
        assert all(f"${variable}" in usage for variable in env_names(name)), name
    assert set(print_config(capsys, "--database", sqlite_url)) == set(ServerSettings.model_fields)


@pytest.mark.parametrize("name", RANGED)
def test_a_value_past_either_end_names_its_flag_or_its_variable(name: str) -> None:
    low, high, exclusive = bounds(ServerSettings.model_fields[name]) or (0, 0, False)
    span = "above" if exclusive else "between"
    for outside in (low - 1 if not exclusive else low, high + 1):
        raw = format_number(outside)
        variable = env_names(name)[0]
        with pytest.raises(ValueError, match=f"^{variable} must be {span} "):
            load_settings({}, {variable: raw})
        with pytest.raises(ValueError, match=f"^{flag_of(name)} must be {span} "):
            load_settings({name: outside}, {})
    # Both ends themselves are taken (an exclusive low: just above it).
    edge = low + 0.001 if exclusive else low
    for value in (edge, high):
        assert getattr(load_settings({}, {env_names(name)[0]: format_number(value)}), name) == value


_INT_FIELDS = ["min_sample_size", "rate_limit_burst", "stats_window_days", "max_connections"]


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(_INT_FIELDS),
    flag=st.one_of(st.none(), st.integers(1, 3000)),
    variable=st.one_of(st.none(), st.integers(1, 3000)),
)
def test_a_flag_wins_over_its_variable_which_wins_over_the_default(
    name: str, flag: int | None, variable: int | None
) -> None:
    environ = {} if variable is None else {env_names(name)[0]: str(variable)}
    expected = next(
        (value for value in (flag, variable) if value is not None),
        ServerSettings.model_fields[name].default,
    )
    assert getattr(load_settings({name: flag}, environ), name) == expected


def test_a_mistyped_field_in_code_is_refused() -> None:
    with pytest.raises(ValueError, match="min_sampel_size"):
        ServerSettings(database_url="sqlite://", min_sampel_size=3)  # type: ignore[call-arg]


def test_settings_are_frozen_once_built() -> None:
    settings = ServerSettings(database_url="sqlite://")
    with pytest.raises(ValueError, match="frozen"):
        settings.rate_limit_burst = 0  # type: ignore[misc]


def test_an_error_never_shows_the_token_or_the_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_METRICS_TOKEN", "secret-" + "t" * 4096)
    assert main(["serve", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "MOSAIC_TELEMETRY_METRICS_TOKEN:" in err
    assert "secret-" not in err
    long_url = "postgresql://u:hunter2@h/" + "d" * 5000
    assert main(["serve", "--print-config", "--database", long_url]) == 2
    err = capsys.readouterr().err
    assert "--database:" in err
    assert "hunter2" not in err


def _created_key(database_url: str) -> str:
    created = subprocess.run(
        [EXE, "keys", "create", "--instance-id", str(INSTANCE), "--database", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return created.stdout.strip()


INSTANCE = uuid.UUID("6f1c0b1e-8f7d-4a57-9a53-0c7d1f6d3a11")


def _closed_by_server(port: int, within: float) -> bool:
    """Whether a connection that sends nothing is closed by the server within `within` s."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as idle:
        try:
            return idle.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            return False


def test_two_workers_apply_flags_variables_and_the_token_file(
    sqlite_url: str, token_file: Path
) -> None:
    key = _created_key(sqlite_url)
    port = free_port()
    argv = [EXE, "serve", "--workers", "2", "--database", sqlite_url, "--max-body-bytes", "1024"]
    argv += ["--metrics-token-file", str(token_file), "--header-timeout", "0.5"]
    environment = {**os.environ, "PORT": str(port), "MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "3"}
    environment["MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND"] = "0.001"  # no refill in the test
    # Variables the flags above must win over, in the workers too.
    environment["MOSAIC_TELEMETRY_MAX_BODY_BYTES"] = str(64 * 1024 * 1024)
    environment["MOSAIC_TELEMETRY_HEADER_TIMEOUT"] = "3600"
    process = subprocess.Popen(argv, env=environment, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    try:
        wait_until(healthy, timeout=60, what="serve --workers 2")
        assert process.poll() is None
        auth = {"Authorization": f"Bearer {key}"}
        # Each worker has its own bucket of 3: 8 requests are more than both together allow.
        big = {"events": [make_event(INSTANCE) for _ in range(5)]}  # over 1024 bytes
        statuses = [
            httpx.post(url + "/v1/events/batch", json=big, headers=auth, timeout=10).status_code
            for _ in range(8)
        ]
        assert 413 in statuses  # --max-body-bytes, a flag, over its variable
        assert 429 in statuses  # the burst of 3 and the rate, variables
        assert set(statuses) <= {413, 429}
        assert httpx.get(url + "/metrics", timeout=10).status_code == 401  # the token file
        assert _closed_by_server(port, within=10)  # --header-timeout 0.5, over its variable
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def test_an_unknown_setting_is_named() -> None:
    with pytest.raises(ValueError, match=r"^colour: Extra inputs are not permitted"):
        load_settings({"colour": "blue"}, {})


def test_worker_variables_rebuild_every_setting_the_parent_had(sqlite_url: str) -> None:
    parent = load_settings(
        {"database_url": sqlite_url, "workers": 2, "header_timeout": 0.5, "port": 0},
        {"PORT": "81", "MOSAIC_TELEMETRY_METRICS_TOKEN": "m-5e", "MOSAIC_TELEMETRY_HOST": "::1"},
    )
    environment = settings_to_env(parent)
    # A worker sees the parent's variables, PORT included: the parent's port still wins.
    assert load_settings({}, {**environment, "PORT": "82"}) == parent
    assert environment["MOSAIC_TELEMETRY_METRICS_TOKEN"] == "m-5e"


def test_a_given_environment_is_read_as_the_process_environment_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = {
        "PORT": "8123",
        "mosaic_telemetry_workers": "3",  # names without case, as pydantic-settings reads them
        "MOSAIC_TELEMETRY_STATS_MAX_AGE": "7.5",
        "MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE": "",  # empty: unset
        "MOSAIC_TELEMETRY_DATABASE_URL": "sqlite:///never-opened.db",
    }
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    from_process = load_settings()
    assert load_settings({}, environment) == from_process
    assert (from_process.port, from_process.workers, from_process.min_sample_size) == (8123, 3, 5)
