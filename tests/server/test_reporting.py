"""`mosaic-telemetry report`, `export` and `keys create --admin`, through main() and a real
server; sums checked against plain arithmetic on the stored events."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from _api_helpers import Served, make_event
from _storage_helpers import INSTANCE, OTHER_INSTANCE
from _usage_helpers import expected_usage, generated_events

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.reporting import export_rows
from mosaicstack_telemetry_server.storage import open_storage

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
EVENTS = generated_events(300, seed=21)
_RANGE = ["--from", "2025-12-20", "--to", "2026-02-05"]


@pytest.fixture
def loaded_url(sqlite_url: str) -> str:
    storage = open_storage(sqlite_url)
    try:
        storage.migrate()
        storage.insert_events(EVENTS)
    finally:
        storage.close()
    return sqlite_url


def _json_report(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["report", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "by", ["day", "week", "month", "model", "task_type", "harness", "project", "branch", "user"]
)
def test_report_from_the_database_sums_what_plain_arithmetic_sums(
    loaded_url: str, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    body = _json_report(capsys, "--database", loaded_url, "--by", by, *_RANGE)
    groups, totals = expected_usage(
        EVENTS,
        instance_id=None,
        start=datetime(2025, 12, 20, tzinfo=UTC),
        end=datetime(2026, 2, 5, tzinfo=UTC),
        group_by=[by],
    )
    got = {group["key"][by]: group["cost_usd_micros"] for group in body["groups"]}  # type: ignore[index]
    assert got == {key[0]: sums["cost_usd_micros"] for key, sums in groups.items()}
    assert body["totals"]["tasks"] == totals["tasks"]  # type: ignore[index]


def test_report_table_shows_each_group_and_the_totals(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--database", loaded_url, "--by", "model", *_RANGE]) == 0
    out = capsys.readouterr().out
    assert "Usage by model" in out
    for model in {event.model for event in EVENTS}:
        assert model in out
    total_cost = sum(event.actual_cost_usd_micros for event in EVENTS) / 1_000_000
    total_line = next(line for line in out.splitlines() if line.startswith("│ Total "))
    assert f"${total_cost:,.2f}" in total_line
    assert f"{len(EVENTS):,}" in total_line


def test_report_by_project_shows_events_without_one_as_none(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--database", loaded_url, "--by", "project", *_RANGE]) == 0
    out = capsys.readouterr().out
    assert "Usage by project" in out
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert rows[0].startswith("│ (none) ")  # events without a project first
    for project in {event.project for event in EVENTS} - {None}:
        assert f"│ {project} " in out


def test_report_of_one_instance_from_the_database(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _json_report(
        capsys, "--database", loaded_url, "--instance-id", str(INSTANCE), "--by", "day", *_RANGE
    )
    assert body["totals"]["tasks"] == sum(e.instance_id == INSTANCE for e in EVENTS)  # type: ignore[index]


def test_report_refuses_an_inverted_range(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["report", "--database", loaded_url, "--from", "2026-02-01", "--to", "2026-01-01"])
        == 2
    )
    assert "--from must be before --to" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["report", "--database", loaded_url, "--from", "last week"])
    assert exited.value.code == 2


def _submit(served: Served, key: str, instance_id: uuid.UUID, costs: list[int]) -> None:
    now = datetime.now(UTC)
    events = [
        make_event(
            instance_id,
            timestamp=(now - timedelta(days=1, minutes=n)).isoformat(),
            actual_cost_usd_micros=cost,
        )
        for n, cost in enumerate(costs)
    ]
    response = served.client(key).post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def test_report_through_the_api_sees_only_the_keys_instance(
    sqlite_server: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = uuid.uuid4()
    other_key, _ = sqlite_server.issue(other)
    _submit(sqlite_server, sqlite_server.key, sqlite_server.instance_id, [100, 200])
    _submit(sqlite_server, other_key, other, [9_000_000])
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", sqlite_server.key)
    body = _json_report(capsys, "--server", sqlite_server.url, "--by", "model")
    assert body["totals"]["tasks"] == 2  # type: ignore[index]
    assert body["totals"]["cost_usd_micros"] == 300  # type: ignore[index]
    assert main(["report", "--server", sqlite_server.url]) == 0
    out, err = capsys.readouterr()
    assert sqlite_server.key not in out + err
    assert "$0.00" in out


def test_report_reads_the_key_from_stdin_and_never_prints_it(sqlite_server: Served) -> None:
    _submit(sqlite_server, sqlite_server.key, sqlite_server.instance_id, [1_500_000])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_TELEMETRY_")}
    result = subprocess.run(
        [EXE, "report", "--server", sqlite_server.url, "--api-key-stdin", "--json"],
        input=sqlite_server.key + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["cost_usd_micros"] == 1_500_000
    wrong = subprocess.run(
        [EXE, "report", "--server", sqlite_server.url, "--api-key-stdin"],
        input="f" * 64 + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    assert "unauthorized" in wrong.stderr
    assert "f" * 64 not in wrong.stderr + wrong.stdout


def test_report_without_a_key_or_a_reachable_server_fails_cleanly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOSAIC_TELEMETRY_API_KEY", raising=False)
    assert main(["report", "--server", "http://127.0.0.1:9"]) == 1
    assert "no API key" in capsys.readouterr().err
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", "a" * 64)
    assert main(["report", "--server", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_report_from_a_server_that_is_not_the_usage_api_fails_cleanly(
    sqlite_server: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", sqlite_server.key)
    # The fragment drops the appended path: a real 200 JSON answer that is not a usage report.
    assert main(["report", "--server", sqlite_server.url + "/v1/health#"]) == 1
    assert "did not answer with a usage report" in capsys.readouterr().err


def test_export_jsonl_writes_every_event_exactly_as_stored(
    loaded_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "events.jsonl"
    assert main(["export", "--database", loaded_url, "--format", "jsonl", "-o", str(target)]) == 0
    assert f"exported {len(EVENTS)} events" in capsys.readouterr().err
    lines = target.read_text("utf-8").splitlines()
    exported = {e.event_id: e for e in map(TaskCompletionEvent.model_validate_json, lines)}
    assert exported == {event.event_id: event for event in EVENTS}


def test_export_csv_filters_by_range_and_instance(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--database", loaded_url, "--format", "csv", "--instance-id"]
    argv += [str(OTHER_INSTANCE), "--from", "2026-01-01", "--to", "2026-01-15T12:00:00Z"]
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, 12, tzinfo=UTC)
    wanted = {
        str(e.event_id)
        for e in EVENTS
        if e.instance_id == OTHER_INSTANCE and start <= e.timestamp < end
    }
    assert {row["event_id"] for row in rows} == wanted
    assert wanted
    first = next(e for e in EVENTS if str(e.event_id) == rows[0]["event_id"])
    assert json.loads(rows[0]["quality_gates_run"]) == [g.value for g in first.quality_gates_run]
    assert int(rows[0]["actual_cost_usd_micros"]) == first.actual_cost_usd_micros


def test_export_csv_carries_the_schema_1_1_fields_and_leaves_them_empty_on_1_0_events(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--database", loaded_url, "--format", "csv"]) == 0
    rows = {row["event_id"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    versions = set()
    for event in EVENTS:
        row = rows[str(event.event_id)]
        versions.add(row["schema_version"])
        assert row["schema_version"] == event.schema_version
        for name in ("project", "branch", "user"):
            assert row[name] == (getattr(event, name) or "")
        for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            value = getattr(event, name)
            assert row[name] == ("" if value is None else str(value))
    assert versions == {"1.0", "1.1"}


def test_export_pages_through_the_table_by_key(loaded_url: str) -> None:
    storage = open_storage(loaded_url)
    try:
        for page in (1, 7, 299, 300, 301):
            ids = [
                e.event_id
                for e in export_rows(storage, instance_id=None, start=None, end=None, page=page)
            ]
            assert len(ids) == len(set(ids)) == len(EVENTS), page
    finally:
        storage.close()


def test_keys_create_admin_and_list_its_role(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--admin", "--label", "ops", "--database", sqlite_url]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"[0-9a-f]{64}", out.strip())
    assert "an admin key" in err
    assert main(["keys", "list", "--database", sqlite_url]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[1:3] == ["-", "admin"]
    assert main(["keys", "list", "--json", "--database", sqlite_url]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["role"], row["instance_id"]) == ("admin", None)
    for argv in (["--admin", "--instance-id", str(INSTANCE)], []):
        with pytest.raises(SystemExit) as exited:
            main(["keys", "create", *argv, "--database", sqlite_url])
        assert exited.value.code == 2


def test_export_shows_a_progress_bar_on_a_terminal(loaded_url: str, tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    target = tmp_path / "events.csv"
    with subprocess.Popen(
        [EXE, "export", "--database", loaded_url, "--format", "csv", "-o", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    ) as process:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    assert b"exporting" in seen
    assert b"exported 300 events" in seen
    assert len(target.read_text("utf-8").splitlines()) == len(EVENTS) + 1


def test_an_admin_report_through_the_api_may_narrow_to_one_instance(
    sqlite_server: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mosaicstack_telemetry_server.auth import issue_api_key

    other = uuid.uuid4()
    other_key, _ = sqlite_server.issue(other)
    _submit(sqlite_server, sqlite_server.key, sqlite_server.instance_id, [100])
    _submit(sqlite_server, other_key, other, [7000])
    admin, _ = issue_api_key(sqlite_server.storage, None, "ops", admin=True)
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", admin)
    body = _json_report(capsys, "--server", sqlite_server.url, "--by", "model")
    assert body["totals"]["cost_usd_micros"] == 7100  # type: ignore[index]
    body = _json_report(capsys, "--server", sqlite_server.url, "--instance-id", str(other))
    assert body["totals"]["cost_usd_micros"] == 7000  # type: ignore[index]
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", sqlite_server.key)
    assert main(["report", "--server", sqlite_server.url, "--instance-id", str(other)]) == 1
    assert "403" in capsys.readouterr().err


# (model, provider, tasks, cost of each in micro-dollars): a priced model, a free local one, a
# model genai-prices does not know (its client stored 0), and one that used no tokens.
_PRICED_AND_NOT = (
    ("claude-sonnet-4-5", "anthropic", 2, 1_230_000),
    ("qwen3-coder", "ollama", 1, 0),
    ("mystery-coder-9", "custom", 3, 0),
)


def _yesterday_noon() -> datetime:
    """An instant whose day holds every event of a test, inside the default 30 days."""
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(12), UTC)


def _submit_models(served: Served) -> None:
    noon = _yesterday_noon()
    events = [
        make_event(
            served.instance_id,
            model=model,
            provider=provider,
            actual_cost_usd_micros=cost,
            timestamp=(noon + timedelta(minutes=len(_PRICED_AND_NOT) * n + m)).isoformat(),
        )
        for m, (model, provider, tasks, cost) in enumerate(_PRICED_AND_NOT)
        for n in range(tasks)
    ]
    events.append(
        make_event(
            served.instance_id,
            model="mystery-idle",
            provider="custom",
            actual_input_tokens=0,
            actual_output_tokens=0,
            actual_cost_usd_micros=0,
            timestamp=noon.isoformat(),
        )
    )
    response = served.client().post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def _row(out: str, first: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(f"│ {first} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


@pytest.mark.parametrize("source", ["--server", "--database"])
def test_report_writes_a_model_without_a_price_as_unpriced_and_a_free_local_one_as_zero(
    server: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    _submit_models(server)
    monkeypatch.setenv("MOSAIC_TELEMETRY_API_KEY", server.key)
    where = [source, server.url if source == "--server" else server.database_url]
    assert main(["report", *where, "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert _row(out, "claude-sonnet-4-5")[5] == "$2.46"
    assert _row(out, "qwen3-coder")[5] == "$0.00"  # free, and said so
    assert _row(out, "mystery-idle")[5] == "$0.00"  # no tokens: nothing left out
    assert _row(out, "mystery-coder-9")[5] == "unpriced (3 tasks)"
    assert _row(out, "Total")[5] == "$2.46 + unpriced (3 tasks)"
    assert "unpriced: mystery-coder-9 (custom), 3 tasks with tokens and no known price" in out

    assert main(["report", *where, "--by", "day"]) == 0
    day = _row(capsys.readouterr().out, _yesterday_noon().date().isoformat())
    assert day[5] == "$2.46 + unpriced (3 tasks)"

    body = _json_report(capsys, *where, "--by", "model")
    unpriced = {group["key"]["model"]: group["unpriced_tasks"] for group in body["groups"]}  # type: ignore[index]
    assert unpriced == {
        "claude-sonnet-4-5": 0,
        "mystery-coder-9": 3,
        "mystery-idle": 0,
        "qwen3-coder": 0,
    }
    assert body["totals"]["unpriced_tasks"] == 3  # type: ignore[index]
    assert body["totals"]["cost_usd_micros"] == 2_460_000  # type: ignore[index]
    assert body["unpriced_models"] == [
        {"model": "mystery-coder-9", "provider": "custom", "tasks": 3}
    ]


def test_report_of_priced_usage_only_says_nothing_of_unpriced(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _json_report(capsys, "--database", loaded_url, "--by", "week", *_RANGE)
    assert body["unpriced_models"] == []
    assert all(group["unpriced_tasks"] == 0 for group in body["groups"])  # type: ignore[attr-defined]
    assert main(["report", "--database", loaded_url, *_RANGE]) == 0
    assert "unpriced" not in capsys.readouterr().out
