"""The `mosaic-telemetry` command: keys, migrate, serve (as a real subprocess) and bad input."""

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

from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.storage import open_storage

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
INSTANCE = "6f1c0b1e-8f7d-4a57-9a53-0c7d1f6d3a11"
HEX64 = re.compile(r"[0-9a-f]{64}")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed command, capturing both streams."""
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_keys_create_prints_the_key_alone_on_stdout(database_url: str) -> None:
    created = run(
        "keys", "create", "--instance-id", INSTANCE, "--label", "ci", "--database", database_url
    )
    assert created.returncode == 0, created.stderr
    assert HEX64.fullmatch(created.stdout.rstrip("\n"))
    assert created.stdout.count("\n") == 1
    key = created.stdout.strip()
    assert key not in created.stderr
    key_id = re.search(r"mk_[0-9a-f]{12}", created.stderr)
    assert key_id

    listed = run("keys", "list", "--database", database_url)
    assert listed.returncode == 0
    assert key_id.group() in listed.stdout
    assert INSTANCE in listed.stdout
    assert "ci" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert not HEX64.search(listed.stdout)

    revoked = run("keys", "revoke", key_id.group(), "--database", database_url)
    assert revoked.returncode == 0
    again = run("keys", "revoke", key_id.group(), "--database", database_url)
    assert again.returncode == 1
    assert "no active key" in again.stderr
    rows = [
        json.loads(line)
        for line in run("keys", "list", "--json", "--database", database_url).stdout.splitlines()
    ]
    assert [(row["key_id"], row["revoked"] is not None) for row in rows] == [(key_id.group(), True)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--instance-id", "not-a-uuid"), "is not a valid UUID"),
        (("keys", "create"), "--instance-id"),
        (("keys", "create", "--instance-id", INSTANCE, "--label", "x" * 101), "at most 100"),
        (("keys", "create", "--instance-id", INSTANCE, "--label", "a\x1b[2Jb"), "printable"),
        (("serve", "--port", "70000"), "between 0 and 65535"),
        (("serve", "--workers", "0"), "between 1 and 64"),
        (("serve", "--min-sample-size", "many"), "must be an integer between 1 and"),
        (("nonsense",), "invalid choice"),
    ],
)
def test_invalid_arguments_exit_2_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unsupported_database_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--database", "mysql://user:hunter2@db/telemetry"]) == 2
    err = capsys.readouterr().err
    assert "unsupported database URL" in err
    assert "hunter2" not in err


def test_bad_setting_in_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE", "lots")
    assert main(["migrate", "--database", sqlite_url]) == 2
    assert (
        "MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE must be an integer between 1 and 1000000, not 'lots'"
        in (capsys.readouterr().err)
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MOSAIC_TELEMETRY_MIN_SAMPLE_SIZE", "0", "between 1 and 1000000"),
        ("MOSAIC_TELEMETRY_STATS_MAX_AGE", "-5", "between 0 and 86400"),
        ("MOSAIC_TELEMETRY_MAX_BODY_BYTES", "0", "between 1024 and 67108864"),
    ],
)
def test_out_of_range_setting_in_environment_stops_serve_with_exit_2(
    sqlite_url: str, variable: str, value: str, message: str
) -> None:
    result = run("serve", "--database", sqlite_url, "--port", "0", env={variable: value})
    assert result.returncode == 2
    assert f"{variable} must be {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_flag_exits_2_naming_the_flag() -> None:
    result = run("serve", "--stats-max-age", "86401")
    assert result.returncode == 2
    assert "--stats-max-age: must be between 0 and 86400" in result.stderr


def test_settings_from_a_namespace_built_by_hand_are_checked_too(sqlite_url: str) -> None:
    from mosaicstack_telemetry_server.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["serve", "--database", sqlite_url])
    args.min_sample_size = 0
    with pytest.raises(ValueError, match="--min-sample-size must be between 1 and 1000000"):
        settings_from_args(args)


def test_unreachable_database_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    assert main(["keys", "list", "--database", url]) == 1
    assert "database error" in capsys.readouterr().err


@pytest.mark.parametrize("command", [("migrate",), ("keys", "list"), ("serve",)])
def test_unreachable_database_is_one_clear_line_without_a_password(
    command: tuple[str, ...],
) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/test"
    result = run(*command, "--database", url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"mosaic-telemetry: database error: the database at "
        f"{url.replace('hunter2', '***')} cannot be reached"
    ]


def test_key_commands_in_process(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_DATABASE_URL", sqlite_url)  # the default database
    assert main(["migrate"]) == 0
    assert "schema version" in capsys.readouterr().err
    assert main(["keys", "create", "--instance-id", INSTANCE, "--label", "in process"]) == 0
    out, err = capsys.readouterr()
    assert HEX64.fullmatch(out.strip())
    key_id = re.search(r"mk_[0-9a-f]{12}", err)
    assert key_id
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["KEY_ID", "INSTANCE_ID", "ROLE", "CREATED", "REVOKED", "LABEL"]
    assert listing[1].split()[:2] == [key_id.group(), INSTANCE]
    assert main(["keys", "revoke", key_id.group()]) == 0
    assert main(["keys", "revoke", key_id.group()]) == 1
    assert main(["keys", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert not HEX64.search(out)  # neither the key nor its hash
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["revoked"] is not None
    assert row["label"] == "in process"


def test_demo_subcommand_is_registered() -> None:
    result = run("demo", "--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def _serve(database_url: str, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            EXE,
            "serve",
            "--port",
            str(port),
            "--database",
            database_url,
            "--log-level",
            "info",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_until_sigterm_then_exits_cleanly(sqlite_url: str, workers: int) -> None:
    created = run("keys", "create", "--instance-id", INSTANCE, "--database", sqlite_url)
    key = created.stdout.strip()
    port = free_port()
    process = _serve(sqlite_url, port, "--workers", str(workers), "--graceful-timeout", "5")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _healthy(url), timeout=30, what="serve")
        assert process.poll() is None
        response = httpx.post(
            url + "/v1/events/batch",
            json={"events": [make_event(uuid.UUID(INSTANCE))]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # Uvicorn finishes in-flight requests and the lifespan, then re-raises the signal so a
    # supervisor sees how the process ended.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete." in err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in logs if line["logger"] == "mosaicstack_telemetry_server.access"]
    assert any(line["path"] == "/v1/events/batch" and line["status"] == 200 for line in access)
    assert key not in err
    assert any("Shutting down" in line["message"] for line in logs)


def test_serve_options_for_one_worker_and_for_several(sqlite_url: str) -> None:
    from fastapi import FastAPI

    from mosaicstack_telemetry_server.cli import build_parser, settings_from_args, uvicorn_options
    from mosaicstack_telemetry_server.runner import settings_from_env
    from mosaicstack_telemetry_server.settings import ServerSettings

    parser = build_parser()
    args = parser.parse_args(
        [
            "serve",
            "--port",
            "9000",
            "--stats-max-age",
            "0",
            "--min-sample-size",
            "7",
            "--database",
            sqlite_url,
        ]
    )
    settings = settings_from_args(args)
    assert settings == ServerSettings(
        database_url=sqlite_url, port=9000, min_sample_size=7, stats_max_age_seconds=0
    )
    app, options, environment = uvicorn_options(settings)
    assert isinstance(app, FastAPI)
    assert environment == {}
    assert options["port"] == 9000
    assert options["timeout_graceful_shutdown"] == 30

    args = parser.parse_args(["serve", "--workers", "3", "--log-level", "debug"])
    args.database = sqlite_url
    args.min_sample_size, args.stats_max_age_seconds = 7, 0
    settings = settings_from_args(args)
    target, options, environment = uvicorn_options(settings)
    assert target == "mosaicstack_telemetry_server.runner:app_from_env"
    assert options["factory"] is True
    assert options["workers"] == 3
    assert environment["MOSAIC_TELEMETRY_LOG_LEVEL"] == "debug"
    rebuilt = settings_from_env(environment)
    assert rebuilt == settings


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--instance-id", "xyz"],
        ["keys", "create", "--instance-id", INSTANCE, "--label", "\x07"],
        ["serve", "--port", "-1"],
        ["serve", "--stats-max-age", "soon"],
    ],
)
def test_parser_rejects_bad_values_with_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mosaicstack_telemetry_server.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def _server_has_read_everything(server_port: int, client_port: int) -> bool:
    """Whether the server's end of a loopback connection has nothing left unread (Linux)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            return int(queues.split(":")[1], 16) == 0
    return False


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_sigterm_lets_the_request_in_flight_finish(sqlite_url: str) -> None:
    key = run("keys", "create", "--instance-id", INSTANCE, "--database", sqlite_url).stdout.strip()
    port = free_port()
    process = _serve(sqlite_url, port, "--graceful-timeout", "20")
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout=30, what="serve")
        body = json.dumps({"events": [make_event(uuid.UUID(INSTANCE))]}).encode()
        head = (
            "POST /v1/events/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(head + body[:10])  # the request is under way, its body incomplete
            client_port = client.getsockname()[1]
            wait_until(lambda: _server_has_read_everything(port, client_port), what="the read")
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: _refuses_connections(port), what="the shutdown to begin")
            client.sendall(body[10:])
            response = b""
            while chunk := client.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 ")
        assert b'"accepted":1' in response.replace(b" ", b"")
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    storage = open_storage(sqlite_url)
    try:
        assert storage.count_events() == 1
    finally:
        storage.close()
