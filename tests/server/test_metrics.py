"""`GET /metrics`: text prometheus_client's own parser reads, counting exactly what was sent.

The multi-worker test runs `mosaic-telemetry serve --workers 2` and scrapes ten times on fresh
connections: the counters must add up across processes whichever worker answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _api_helpers import Served, free_port, make_event, serve, wait_until
from prometheus_client.parser import text_string_to_metric_families

from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.metrics import (
    REJECTION_REASONS,
    forget_dead_processes,
    rejection_reason,
)

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
INSTANCE = uuid.UUID("6f1c0b1e-8f7d-4a57-9a53-0c7d1f6d3a11")
BATCH = "/v1/events/batch"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and labels (pid labels dropped)."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "pid")
            found[(sample.name, labels)] = found.get((sample.name, labels), 0.0) + sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape_when(url: str, expected: float, name: str, **labels: str) -> Samples:
    """Scrape until `name` shows `expected`: a request is counted just after its response."""
    found: Samples = {}

    def settled() -> bool:
        nonlocal found
        found = samples(httpx.get(url + "/metrics").text)
        return value(found, name, **labels) == expected

    wait_until(settled, timeout=10, what=f"{name} == {expected}")
    return found


def _send_mixed_batches(url: str, key: str, instance_id: uuid.UUID, batches: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(batches):
        events = [
            make_event(instance_id),
            make_event(instance_id),
            make_event(instance_id, timestamp="2019-06-01T00:00:00Z"),
            make_event(uuid.uuid4()),
            make_event(instance_id, task_duration_ms="slow"),
        ]
        response = httpx.post(url + BATCH, json={"events": events}, headers=headers, timeout=30)
        assert response.status_code == 207
    assert httpx.post(url + BATCH, json={"events": []}, headers={"Authorization": "Bearer x"}
                      ).status_code == 401  # fmt: skip


def test_metrics_count_events_requests_and_pool_use(sqlite_server: Served) -> None:
    _send_mixed_batches(sqlite_server.url, sqlite_server.key, sqlite_server.instance_id, 3)
    response = httpx.get(sqlite_server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = scrape_when(sqlite_server.url, 1, "mosaic_telemetry_http_requests_total",
                        route=BATCH, method="POST", status="401")  # fmt: skip
    assert value(found, "mosaic_telemetry_events_accepted_total") == 6
    assert value(found, "mosaic_telemetry_events_rejected_total", reason="invalid") == 3
    assert value(found, "mosaic_telemetry_events_rejected_total", reason="wrong_instance") == 3
    assert (
        value(found, "mosaic_telemetry_events_rejected_total", reason="implausible_timestamp") == 3
    )
    route = {"route": BATCH, "method": "POST"}
    assert value(found, "mosaic_telemetry_http_requests_total", **route, status="207") == 3
    assert value(found, "mosaic_telemetry_http_requests_total", **route, status="401") == 1
    assert value(found, "mosaic_telemetry_http_request_duration_seconds_count", **route) == 4
    assert value(found, "mosaic_telemetry_db_pool_connections", state="max") == 8
    assert value(found, "mosaic_telemetry_db_pool_connections", state="open") >= 1


def test_unmatched_paths_and_odd_methods_share_one_label(sqlite_server: Served) -> None:
    for path in ("/a", "/b", "/c"):
        assert httpx.get(sqlite_server.url + path).status_code == 404
    httpx.request("BREW", sqlite_server.url + "/livez")
    found = scrape_when(sqlite_server.url, 1, "mosaic_telemetry_http_requests_total",
                        route="/livez", method="OTHER", status="405")  # fmt: skip
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    assert value(found, "mosaic_telemetry_http_requests_total", **unmatched) == 3
    assert value(found, "mosaic_telemetry_http_requests_total", route="/livez", method="OTHER",
                 status="405") == 1  # fmt: skip


def test_statistics_age_is_reported_per_task_type(sqlite_server: Served) -> None:
    api = sqlite_server.client()
    assert api.post(BATCH, json={"events": [make_event(sqlite_server.instance_id)]}).is_success
    query = {"task_type": "implementation", "model": "claude-sonnet-4-5",
             "provider": "anthropic", "complexity": "medium"}  # fmt: skip
    assert api.post("/v1/predictions/batch", json={"queries": [query]}).is_success

    def reported() -> bool:
        found = samples(httpx.get(sqlite_server.url + "/metrics").text)
        name = "mosaic_telemetry_prediction_statistics_age_seconds"
        return (name, frozenset({("task_type", "implementation")})) in found

    wait_until(reported, timeout=20, what="statistics age")


@pytest.mark.parametrize(
    "given", [None, "Bearer wrong", "Bearer s3cret-tokens", "bearer s3cret-token"]
)
def test_a_metrics_token_is_required_once_set(sqlite_url: str, given: str | None) -> None:
    with serve(sqlite_url, metrics_token="s3cret-token") as served:
        headers = {"Authorization": given} if given else {}
        refused = httpx.get(served.url + "/metrics", headers=headers)
        allowed = httpx.get(served.url + "/metrics",
                            headers={"Authorization": "Bearer s3cret-token"})  # fmt: skip
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert "s3cret" not in refused.text
    assert allowed.status_code == 200


def test_every_rejection_reason_has_a_label() -> None:
    assert rejection_reason("timestamp: ... (implausible_timestamp)") == "implausible_timestamp"
    assert rejection_reason("schema_version: ... (unsupported_schema_version)") == (
        "unsupported_schema_version"
    )
    assert rejection_reason(None) == "invalid"
    assert set(REJECTION_REASONS) >= {"invalid", "wrong_instance"}


@pytest.fixture
def two_workers(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`serve --workers 2` as a subprocess, with its own multiprocess folder; (url, key,
    folder)."""
    assert main(["migrate", "--database", sqlite_url]) == 0
    created = subprocess.run(
        [EXE, "keys", "create", "--instance-id", str(INSTANCE), "--database", sqlite_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    port = free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    # A previous run's samples are wiped; anything else in the folder is left alone.
    (folder / "counter_999999.db").write_bytes(b"stale")
    (folder / "notes.db").write_bytes(b"kept")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    process = subprocess.Popen(
        [EXE, "serve", "--port", str(port), "--database", sqlite_url, "--workers", "2",
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/livez", timeout=1).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    try:
        wait_until(up, timeout=60, what="two workers")
        assert process.poll() is None
        assert not (folder / "counter_999999.db").exists()
        (folder / "notes.db").unlink()
        yield url, created.stdout.strip(), folder
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_metrics_add_up_across_two_worker_processes(
    two_workers: tuple[str, str, Path],
) -> None:
    url, key, _ = two_workers
    # Fresh connections each time, so both workers get requests (the kernel spreads accepts).
    _send_mixed_batches(url, key, INSTANCE, 20)
    scrape_when(url, 1, "mosaic_telemetry_http_requests_total", route=BATCH, method="POST",
                status="401")  # fmt: skip
    scrapes = [samples(httpx.get(url + "/metrics").text) for _ in range(10)]
    for found in scrapes:
        assert value(found, "mosaic_telemetry_events_accepted_total") == 40
        assert value(found, "mosaic_telemetry_events_rejected_total", reason="invalid") == 20
        assert value(found, "mosaic_telemetry_http_requests_total", route=BATCH, method="POST",
                     status="207") == 20  # fmt: skip


def _pool_files(folder: Path) -> set[int]:
    """The pids whose pool gauge (a live sum) is in the folder."""
    return {int(path.stem.rpartition("_")[2]) for path in folder.glob("gauge_livesum_*.db")}


def test_a_killed_workers_pool_stops_counting_once_scraped(
    two_workers: tuple[str, str, Path],
) -> None:
    url, key, folder = two_workers

    def both_sampled() -> bool:
        _send_mixed_batches(url, key, INSTANCE, 2)  # fresh connections reach both workers
        return len(_pool_files(folder)) >= 2

    wait_until(both_sampled, timeout=60, what="both workers' pool gauges")
    before = samples(httpx.get(url + "/metrics", timeout=10).text)
    workers = _pool_files(folder)
    each = value(before, "mosaic_telemetry_db_pool_connections", state="max") / len(workers)
    assert each >= 8  # every worker's pool has the same size limit
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)  # no graceful exit: its gauge file stays behind

    def forgotten() -> bool:
        found = samples(httpx.get(url + "/metrics", timeout=10).text)
        live = _pool_files(folder)
        # Once gone, the sum is that of the live processes' pools alone (the server restarts
        # the killed worker, whose new pid counts once it has sampled its pool).
        total = value(found, "mosaic_telemetry_db_pool_connections", state="max")
        return victim not in live and total == len(live) * each

    wait_until(forgotten, timeout=60, what="the killed worker's gauges dropped")


def _a_dead_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return int(gone.stdout)


def test_only_the_live_gauges_of_processes_that_are_gone_are_dropped(tmp_path: Path) -> None:
    dead, alive = _a_dead_pid(), os.getpid()
    for name in (
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"gauge_all_{dead}.db",  # not a live gauge: a dead process's last value is kept
        f"counter_{dead}.db",
        "gauge_livesum_notes.db",
    ):
        (tmp_path / name).write_bytes(b"")
    assert forget_dead_processes(tmp_path) == [dead]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{alive}.db", f"gauge_all_{dead}.db", f"counter_{dead}.db",
         "gauge_livesum_notes.db"]
    )  # fmt: skip
    assert forget_dead_processes(tmp_path) == []
    # A pid no process can have (too large for the kernel, or 0) is left alone.
    for name in ("gauge_livesum_99999999999.db", "gauge_livesum_0.db"):
        (tmp_path / name).write_bytes(b"")
    assert forget_dead_processes(tmp_path) == []
    assert (tmp_path / "gauge_livesum_99999999999.db").exists()


def test_scrapes_at_once_both_drop_a_dead_process_without_failing(tmp_path: Path) -> None:
    # Two scrapes (two Prometheus servers, two workers) may find the same dead file: the one
    # that finds it already removed must not fail.
    dead = _a_dead_pid()
    failures: list[BaseException] = []

    def scrape(barrier: threading.Barrier) -> None:
        barrier.wait(timeout=30)
        try:
            forget_dead_processes(tmp_path)
        except BaseException as exc:  # what the test looks for
            failures.append(exc)

    for round_ in range(50):
        for mode in ("livesum", "liveall", "livemax", "livemin", "livemostrecent"):
            (tmp_path / f"gauge_{mode}_{dead}.db").write_bytes(b"")
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=scrape, args=(barrier,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, f"round {round_}: {failures[0]!r}"
        assert not list(tmp_path.iterdir())


def test_pool_use_is_reported_on_each_backend(server: Served) -> None:
    assert server.client().post(BATCH, json={"events": [make_event(server.instance_id)]}).is_success
    found = samples(httpx.get(server.url + "/metrics").text)
    assert value(found, "mosaic_telemetry_db_pool_connections", state="max") >= 8
    assert value(found, "mosaic_telemetry_db_pool_connections", state="open") >= 1
    assert value(found, "mosaic_telemetry_db_pool_connections", state="in_use") == 0
    assert value(found, "mosaic_telemetry_events_accepted_total") == 1
