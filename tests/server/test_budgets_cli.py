"""`mosaic-telemetry budgets set|list|delete` on a real SQLite file."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from _api_helpers import make_event

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.budgets.periods import period_bounds
from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.storage import open_storage

INSTANCE = uuid.UUID("6f1c0b1e-8f7d-4a57-9a53-0c7d1f6d3a11")


def test_set_list_and_delete_show_the_spend_left_and_forecast(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ["--database", sqlite_url]
    assert main(["budgets", "set", "team", "--usd", "0.01", "--period", "month", *db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    acme = ["budgets", "set", "acme", "--usd", "2.5", "--period", "week",
            "--instance", str(INSTANCE), "--project", "acme/app", "--thresholds", "1,0.5",
            "--webhook-url", "https://hooks.example/x", "--webhook-secret-stdin"]  # fmt: skip
    assert main([*acme, *db]) == 0
    storage = open_storage(sqlite_url)
    try:
        start, _ = period_bounds("month", datetime.now(UTC))
        stamp = max(start, datetime.now(UTC) - timedelta(seconds=2))
        event = make_event(INSTANCE, timestamp=stamp.isoformat(), actual_cost_usd_micros=4_100)
        storage.insert_events([TaskCompletionEvent.model_validate(event)])
    finally:
        storage.close()
    capsys.readouterr()
    assert main(["budgets", "list", *db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PERIOD", "SCOPE", "AMOUNT", "SPENT", "LEFT", "FORECAST",
                                "UNTIL"]  # fmt: skip
    assert lines[1].split()[:3] == ["acme", "week", str(INSTANCE)]
    team = lines[2].split()
    assert team[:7] == ["team", "month", "all", "instances", "$0.01", "$0.00", "$0.01"]
    assert main(["budgets", "list", "--json", *db]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["thresholds"] == [0.5, 1.0]
    assert "s3cret" not in json.dumps(rows)
    assert rows[1]["spent_usd_micros"] == 4_100
    assert rows[1]["left_usd_micros"] == 5_900
    assert main(["budgets", "delete", "acme", *db]) == 0
    assert main(["budgets", "delete", "acme", *db]) == 1
    assert "no budget named 'acme'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--usd", "0", "--period", "day"],
        ["--usd", "ten", "--period", "day"],
        ["--usd", "1", "--period", "year"],
    ],
)
def test_bad_arguments_exit_2(sqlite_url: str, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["budgets", "set", "x", *args, "--database", sqlite_url])
    assert exited.value.code == 2


def test_a_budget_the_api_would_refuse_is_refused(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["budgets", "set", "x", "--usd", "1", "--period", "day", "--database", sqlite_url]
    assert main([*args, "--webhook-url", "file:///etc/passwd"]) == 2
    assert main([*args, "--thresholds", "0.5,0.5"]) == 2
    assert main([*args, "--thresholds", "half"]) == 2
    assert "http or https" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["budgets", "set", "bad name", "--usd", "1", "--period", "day"])
