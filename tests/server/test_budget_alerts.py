"""Budget alerts over real storage, real webhook receivers and real server processes: once per
threshold per period per budget revision (a budget created again, or with new terms, alerts
afresh), delivered after the receiver's outage, signed, logged and counted."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import os
import random
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _api_helpers import free_port, make_event, serve, wait_until
from _webhook_helpers import Receiver, webhook_receiver
from prometheus_client.parser import text_string_to_metric_families

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.budgets.backoff import GIVE_UP_AFTER, retry_delay
from mosaicstack_telemetry_server.budgets.service import AlertService
from mosaicstack_telemetry_server.budgets.webhook import SIGNATURE_HEADER, signature
from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.storage import Storage
from mosaicstack_telemetry_server.storage._budgets import BudgetRecord, budgets_of

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
SECRET = "whsec-test-0123456789"
INSTANCE = uuid.uuid4()
# 60% into a 30-day month: forecasts are allowed, and 600 of 1000 forecasts 1000.
NOW = datetime(2026, 11, 19, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _spend(storage: Storage, at: datetime, *costs: int) -> None:
    events = [
        TaskCompletionEvent.model_validate(
            make_event(INSTANCE, timestamp=_z(at), actual_cost_usd_micros=cost)
        )
        for cost in costs
    ]
    storage.insert_events(events)


def _budget(url: str | None, amount: int = 1000, **fields: Any) -> BudgetRecord:
    return BudgetRecord(
        name=fields.pop("name", "team"),
        amount_usd_micros=amount,
        period=fields.pop("period", "month"),
        instance_id=INSTANCE,
        project=None,
        thresholds=fields.pop("thresholds", (0.5, 0.8, 1.0)),
        webhook_url=url,
        webhook_secret=fields.pop("secret", SECRET),
        updated_at=NOW,
    )


def _service(storage: Storage, clock: Clock, seed: int = 1) -> AlertService:
    return AlertService(storage, check_interval=60, clock=clock, rng=random.Random(seed))


def _verified(receiver: Receiver) -> list[dict[str, Any]]:
    """The delivered bodies, each checked against its signature."""
    bodies = []
    for item in receiver.received:
        if item.status == 200:
            expected = signature(item.body, SECRET)
            assert hmac.compare_digest(item.headers[SIGNATURE_HEADER], expected)
            bodies.append(item.json)
    return bodies


def test_each_threshold_alerts_once_per_period_whatever_the_processes(storage: Storage) -> None:
    clock = Clock(NOW)
    with webhook_receiver() as receiver:
        budgets_of(storage).put_budget(_budget(receiver.url))
        first, second = _service(storage, clock), _service(storage, clock)
        _spend(storage, NOW - timedelta(days=1), 300, 300)
        first.check_once()
        second.check_once()
        first.send_due()
        second.send_due()
        assert [(body["kind"], body["threshold"]) for body in _verified(receiver)] == [
            ("threshold", 0.5)
        ]
        _spend(storage, NOW - timedelta(hours=1), 450)  # 1050 of 1000: 0.8, 1.0 and forecast
        for service in (second, first, second):
            service.check_once()
            service.send_due()
        bodies = _verified(receiver)
        assert sorted((body["kind"], body["threshold"] or 0) for body in bodies) == [
            ("forecast", 0),
            ("threshold", 0.5),
            ("threshold", 0.8),
            ("threshold", 1.0),
        ]
        assert len({body["alert_id"] for body in bodies}) == receiver.attempts() == 4
        last = next(body for body in bodies if body["threshold"] == 1.0)
        assert last["spent_usd_micros"] == 1050
        assert last["period_start"] == "2026-11-01T00:00:00Z"
        assert last["text"].startswith("Budget team: $0.00 of $0.00 spent this month")
        # The next period starts afresh.
        clock.now = datetime(2026, 12, 20, tzinfo=UTC)
        _spend(storage, clock.now - timedelta(hours=1), 600)
        first.check_once()
        first.send_due()
        december = _verified(receiver)[4:]
        assert [(body["threshold"], body["period_start"]) for body in december] == [
            (0.5, "2026-12-01T00:00:00Z")
        ]


def test_a_bad_signature_is_detectable_by_the_receiver(storage: Storage) -> None:
    clock = Clock(NOW)
    with webhook_receiver() as receiver:
        budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.1,)))
        _spend(storage, NOW - timedelta(days=1), 100)
        service = _service(storage, clock)
        service.check_once()
        service.send_due()
        (item,) = receiver.received
        header = item.headers[SIGNATURE_HEADER]
        good = "sha256=" + hmac.new(SECRET.encode(), item.body, hashlib.sha256).hexdigest()
        assert header == good
        tampered = item.body.replace(b'"spent_usd_micros":100', b'"spent_usd_micros":1')
        assert tampered != item.body
        assert signature(tampered, SECRET) != header
        assert signature(item.body, "another-secret") != header


def test_a_receiver_down_for_an_hour_gets_its_alerts_after(storage: Storage) -> None:
    clock = Clock(NOW)
    with webhook_receiver() as receiver:
        budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.5, 1.0)))
        _spend(storage, NOW - timedelta(days=1), 1000)
        service = _service(storage, clock)
        service.check_once()
        receiver.down = True
        attempts_at: list[datetime] = []
        while clock.now < NOW + timedelta(hours=1):
            before = receiver.attempts()
            wait = service.send_due()
            attempts_at += [clock.now] * (receiver.attempts() - before)
            clock.now += timedelta(seconds=max(wait, 1))
        firsts = [at for at in attempts_at if at - NOW <= timedelta(minutes=1)]
        assert len(firsts) >= 2 * 3  # both alerts: the first try and two retries in a minute
        assert not _verified(receiver)
        receiver.down = False
        back = clock.now
        while len(_verified(receiver)) < 3 and clock.now < back + timedelta(minutes=15):
            clock.now += timedelta(seconds=max(service.send_due(), 1))
        kinds = sorted((body["kind"], body["threshold"] or 0) for body in _verified(receiver))
        assert kinds == [("forecast", 0), ("threshold", 0.5), ("threshold", 1.0)]
        assert clock.now - back <= timedelta(minutes=11)  # the cap on a wait is 10 minutes
        alerts = budgets_of(storage).list_alerts(10)
        assert {alert.state for alert in alerts} == {"delivered"}
        assert all(alert.attempts >= 8 and alert.last_error is None for alert in alerts)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(storage: Storage) -> None:
    clock = Clock(NOW)
    with webhook_receiver() as elsewhere, webhook_receiver() as receiver:
        receiver.answer, receiver.location = 307, elsewhere.url
        budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.5,)))
        _spend(storage, NOW - timedelta(days=1), 500)
        service = _service(storage, clock)
        service.check_once()
        service.send_due()
        assert receiver.attempts() == 1
        assert elsewhere.attempts() == 0
        (alert,) = budgets_of(storage).list_alerts(5)
        assert (alert.state, alert.last_error) == ("pending", "HTTP 307")
        # Two processes that read the same due row: the first to move it on takes it.
        later = NOW + timedelta(hours=1)
        assert budgets_of(storage).take_alert(alert, later, later + timedelta(minutes=1))
        assert not budgets_of(storage).take_alert(alert, later, later + timedelta(minutes=1))


def test_an_alert_is_given_up_after_two_days_and_without_a_budget(storage: Storage) -> None:
    clock = Clock(NOW)
    with webhook_receiver() as receiver:
        receiver.down = True
        budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.5,)))
        budgets_of(storage).put_budget(_budget(receiver.url, name="gone", thresholds=(0.5,)))
        _spend(storage, NOW - timedelta(days=1), 900)
        service = _service(storage, clock)
        service.check_once()
        budgets_of(storage).delete_budget("gone")
        service.send_due()
        clock.now += GIVE_UP_AFTER
        service.send_due()
        states = {alert.budget: alert.state for alert in budgets_of(storage).list_alerts(10)}
        assert states == {"team": "abandoned", "gone": "abandoned"}
        assert budgets_of(storage).next_alert_due() is None


def test_a_budget_without_a_webhook_logs_its_alert(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    budgets_of(storage).put_budget(_budget(None, thresholds=(0.5,)))
    _spend(storage, NOW - timedelta(days=1), 500)
    service = _service(storage, Clock(NOW))
    seen: list[tuple[str, str]] = []
    service.observer = lambda event, kind: seen.append((event, kind))
    with caplog.at_level(logging.INFO, "mosaicstack_telemetry_server.budgets"):
        service.check_once()
        service.check_once()
    assert seen == [("claimed", "threshold")]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert "Budget team: $0.00 of $0.00 spent this month" in lines[0]
    assert service.send_due() == 60
    assert [alert.state for alert in budgets_of(storage).list_alerts(5)] == ["no_webhook"]


def test_the_backoff_retries_thrice_within_a_minute_and_waits_at_most_ten_minutes() -> None:
    rng = random.Random(7)
    waits = [retry_delay(attempt, rng).total_seconds() for attempt in range(1, 30)]
    assert sum(waits[:3]) < 60
    assert all(wait <= 600 * 1.2 for wait in waits)
    assert waits[-1] >= 600 * 0.8
    assert sum(waits) > 3 * 3600  # backing off, not hammering


def test_a_live_server_alerts_within_seconds_of_the_batch_that_crossed(sqlite_url: str) -> None:
    with webhook_receiver() as receiver, serve(sqlite_url, budget_check_interval=30) as served:
        admin_key, _ = issue_api_key(served.storage, None, "ops", admin=True)
        admin = served.client(admin_key)
        response = admin.put(
            "/v1/budgets/live",
            json={"amount_usd_micros": 1000, "period": "month", "thresholds": [0.5],
                  "webhook_url": receiver.url, "webhook_secret": SECRET},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        stamp = _z(datetime.now(UTC) - timedelta(seconds=5))
        event = make_event(served.instance_id, timestamp=stamp, actual_cost_usd_micros=700)
        assert served.client().post("/v1/events/batch", json={"events": [event]}).status_code == 200
        # Woken by the batch, not by the 30 s interval.
        wait_until(lambda: any(b["kind"] == "threshold" for b in _verified(receiver)), 10)
        metrics = httpx.get(served.url + "/metrics").text
        assert _sample(metrics, "mosaic_telemetry_budget_alerts_total", "claimed", "threshold") == 1


def _sample(text: str, name: str, event: str, kind: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == {"event": event, "kind": kind}
    )


@pytest.fixture
def two_processes(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `mosaic-telemetry serve` processes on one database (each backend): their URLs."""
    assert main(["migrate", "--database", database_url]) == 0
    env = {**os.environ, "MOSAIC_TELEMETRY_BUDGET_CHECK_INTERVAL": "0.3"}
    processes, urls = [], []
    try:
        for index in range(2):
            port = free_port()
            log = (tmp_path / f"server-{index}.log").open("wb")
            processes.append(subprocess.Popen(
                [EXE, "serve", "--port", str(port), "--database", database_url],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            wait_until(lambda u=url, p=process: _up(u) or p.poll() is not None, 60, "serve")
            assert process.poll() is None
        yield urls
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/livez", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_two_server_processes_send_each_alert_once(
    two_processes: list[str], database_url: str
) -> None:
    from mosaicstack_telemetry_server.storage import open_storage

    storage = open_storage(database_url)
    try:
        key, _ = issue_api_key(storage, INSTANCE, "fleet")
        admin_key, _ = issue_api_key(storage, None, "ops", admin=True)
        with webhook_receiver() as receiver:
            receiver.fail_first = 2  # the first attempts fail: retried, still once each
            headers = {"Authorization": f"Bearer {admin_key}"}
            body = {"amount_usd_micros": 1000, "period": "month", "thresholds": [0.25, 0.5, 1.0],
                    "instance_id": str(INSTANCE), "webhook_url": receiver.url,
                    "webhook_secret": SECRET}  # fmt: skip
            put = httpx.put(two_processes[0] + "/v1/budgets/fleet", json=body, headers=headers)
            assert put.status_code == 200, put.text
            stamp = _z(datetime.now(UTC) - timedelta(seconds=5))
            for round_ in range(6):  # both processes ingest, both are woken, both check
                url = two_processes[round_ % 2]
                event = make_event(INSTANCE, timestamp=stamp, actual_cost_usd_micros=200)
                response = httpx.post(
                    url + "/v1/events/batch",
                    json={"events": [event]},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 200
            wait_until(lambda: len(_verified(receiver)) >= 3, 30, "three threshold alerts")
            claimed = lambda: sum(  # noqa: E731
                _sample(httpx.get(url + "/metrics").text,
                        "mosaic_telemetry_budget_alerts_total", "claimed", kind)
                for url in two_processes for kind in ("threshold", "forecast")
            )  # fmt: skip
            rows = lambda: budgets_of(storage).list_alerts(50)  # noqa: E731
            wait_until(lambda: all(alert.state == "delivered" for alert in rows()), 30)
            wait_until(lambda: claimed() == len(rows()), 10, "every claim counted")
            bodies = _verified(receiver)
            ids = [body["alert_id"] for body in bodies]
            assert len(ids) == len(set(ids)) == len(rows())
            thresholds = sorted(b["threshold"] for b in bodies if b["kind"] == "threshold")
            assert thresholds == [0.25, 0.5, 1.0]
    finally:
        storage.close()


def test_the_threads_ride_out_an_outage_with_one_error_and_stop_on_time(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    from mosaicstack_telemetry_server.storage import StorageError

    outage = [3]  # the first checks find storage not ready, as the runtime says while it is down

    def ready() -> None:
        if outage[0] > 0:
            outage[0] -= 1
            raise StorageError("storage not ready (migration pending)")

    with webhook_receiver() as receiver:
        budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.5,)))
        _spend(storage, NOW - timedelta(days=1), 500)
        service = AlertService(storage, check_interval=0.05, ready=ready, clock=Clock(NOW))
        with caplog.at_level(logging.DEBUG, "mosaicstack_telemetry_server.budgets"):
            service.start()
            try:
                wait_until(lambda: len(_verified(receiver)) == 1, 10, "the alert after the outage")
            finally:
                assert service.stop(5)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "not ready" in errors[0].getMessage()


def test_a_failure_that_began_before_the_other_thread_recovered_is_the_same_outage(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender fails (logged), the evaluator's check begins, the sender recovers, then the
    evaluator's check fails: one outage, one error, in this order every time."""
    import threading

    from mosaicstack_telemetry_server.storage import StorageError

    evaluator_entered, sender_recovered = threading.Event(), threading.Event()
    sender_calls = [0]

    def ready() -> None:
        if threading.current_thread().name == "alert-sender":
            sender_calls[0] += 1
            if sender_calls[0] == 1:  # fails once the evaluator's round has begun
                assert evaluator_entered.wait(10)
                raise StorageError("storage not ready (sender)")
            if sender_calls[0] >= 3:  # the second round, a success, has ended
                sender_recovered.set()
            return
        if not evaluator_entered.is_set():
            evaluator_entered.set()
            assert sender_recovered.wait(10)
            raise StorageError("storage not ready (evaluator, begun before the recovery)")

    service = AlertService(storage, check_interval=0.01, ready=ready, clock=Clock(NOW))
    with caplog.at_level(logging.DEBUG, "mosaicstack_telemetry_server.budgets"):
        service.start()
        try:
            wait_until(
                lambda: any("evaluator" in r.getMessage() for r in caplog.records),
                10,
                "the evaluator's late failure",
            )
        finally:
            assert service.stop(5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["budget alerts: storage not ready (sender)"]


def _revision(storage: Storage, name: str = "team") -> str:
    """The stored revision of a budget."""
    budget = budgets_of(storage).get_budget(name)
    assert budget is not None
    return budget.revision


def _alerted(receiver: Receiver) -> list[tuple[float | None, int]]:
    """The (threshold, amount) of each alert delivered, in order."""
    return [(body["threshold"], body["amount_usd_micros"]) for body in _verified(receiver)]


def test_a_budget_created_again_under_its_name_alerts_afresh(database_url: str) -> None:
    with webhook_receiver() as receiver, serve(database_url, budget_check_interval=30) as served:
        admin_key, _ = issue_api_key(served.storage, None, "ops", admin=True)
        admin = served.client(admin_key)
        body = {"amount_usd_micros": 1000, "period": "month", "thresholds": [0.5],
                "webhook_url": receiver.url, "webhook_secret": SECRET}  # fmt: skip
        assert admin.put("/v1/budgets/team", json=body).status_code == 200
        stamp = _z(datetime.now(UTC) - timedelta(seconds=5))
        event = make_event(served.instance_id, timestamp=stamp, actual_cost_usd_micros=700)
        assert served.client().post("/v1/events/batch", json={"events": [event]}).status_code == 200
        # Both budgets alert at 0.5 (and, depending on the day of the month, at the forecast).
        thresholds = lambda: [  # noqa: E731
            body for body in _verified(receiver) if body["kind"] == "threshold"
        ]
        rows = lambda: budgets_of(served.storage).list_alerts(10)  # noqa: E731
        delivered = lambda: all(alert.state == "delivered" for alert in rows())  # noqa: E731
        wait_until(lambda: len(thresholds()) == 1, 10, "the first budget's alert")
        # Its forecast alert too, if any, before the delete.
        wait_until(delivered, 10, "the first budget's alerts delivered")
        assert admin.delete("/v1/budgets/team").status_code == 204
        # The new budget is already past its threshold: the PUT wakes the check.
        assert admin.put("/v1/budgets/team", json=body).status_code == 200
        wait_until(lambda: len(thresholds()) == 2, 10, "the new budget's alert")
        first, second = thresholds()
        assert first["alert_id"] != second["alert_id"]
        assert (second["budget"], second["threshold"]) == ("team", 0.5)
        # The threshold alerts, one a revision (a forecast alert of the first budget claimed
        # just as it was deleted may be abandoned, as designed).
        sent = lambda: [alert for alert in rows() if alert.kind == "threshold"]  # noqa: E731
        wait_until(lambda: all(alert.state == "delivered" for alert in sent()), 10)
        assert len({alert.revision for alert in sent()}) == 2


def test_a_new_amount_rearms_the_thresholds_against_it(
    storage: Storage, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(NOW)
    service = _service(storage, clock)
    with webhook_receiver() as receiver:

        def set_budget(usd: str) -> None:
            monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
            argv = ["budgets", "set", "team", "--usd", usd, "--period", "month",
                    "--instance", str(INSTANCE), "--thresholds", "0.5,1",
                    "--webhook-url", receiver.url, "--webhook-secret-stdin",
                    "--database", database_url]  # fmt: skip
            assert main(argv) == 0

        set_budget("0.001")
        _spend(storage, NOW - timedelta(days=1), 600)
        service.check_once()
        service.send_due()
        assert _alerted(receiver) == [(0.5, 1000)]
        set_budget("0.002")  # 600 of 2000: below every threshold of the new amount
        service.check_once()
        service.send_due()
        assert _alerted(receiver) == [(0.5, 1000)]
        _spend(storage, NOW - timedelta(hours=1), 500)  # 1100 of 2000: its 0.5 again
        service.check_once()
        service.send_due()
        assert _alerted(receiver) == [(0.5, 1000), (0.5, 2000)]
        first, second = _verified(receiver)
        assert first["alert_id"] != second["alert_id"]
        # New thresholds re-arm too: 0.5 of 2000 is reached again, under a third id.
        budgets_of(storage).put_budget(_budget(receiver.url, 2000, thresholds=(0.5, 0.9)))
        service.check_once()
        service.send_due()
        assert _alerted(receiver) == [(0.5, 1000), (0.5, 2000), (0.5, 2000)]
        assert len({body["alert_id"] for body in _verified(receiver)}) == 3


def test_a_budget_put_again_with_the_same_terms_alerts_once(storage: Storage) -> None:
    clock = Clock(NOW)
    store = budgets_of(storage)
    with webhook_receiver() as receiver:
        store.put_budget(_budget(receiver.url, thresholds=(0.5,)))
        revision = _revision(storage)
        _spend(storage, NOW - timedelta(days=1), 600)
        service = _service(storage, clock)
        service.check_once()
        service.send_due()
        # The same terms, later, from a fresh process; then a rotated secret: the alert stays
        # sent (neither the time of the PUT nor the webhook decides when an alert is due).
        later = replace(_budget(receiver.url, thresholds=(0.5,)), updated_at=NOW + timedelta(1))
        store.put_budget(later)
        _service(storage, clock).check_once()
        store.put_budget(replace(later, webhook_secret="rotated-secret-0123"))
        for process in (service, _service(storage, clock)):
            process.check_once()
            process.send_due()
        assert _revision(storage) == revision
        assert _alerted(receiver) == [(0.5, 1000)]
        assert len(store.list_alerts(10)) == 1


def test_a_retried_alert_keeps_its_id_in_every_process(storage: Storage, database_url: str) -> None:
    from mosaicstack_telemetry_server.budgets.alerts import DueAlert, alert_id
    from mosaicstack_telemetry_server.storage import open_storage

    clock = Clock(NOW)
    other = open_storage(database_url)  # a second process's own connection to the database
    try:
        with webhook_receiver() as receiver:
            receiver.fail_first = 1
            budgets_of(storage).put_budget(_budget(receiver.url, thresholds=(0.5,)))
            _spend(storage, NOW - timedelta(days=1), 600)
            first, second = _service(storage, clock), _service(other, clock, seed=2)
            first.check_once()
            first.send_due()  # refused: to be retried
            clock.now += timedelta(minutes=1)
            second.check_once()  # computes the same id: its INSERT loses
            second.send_due()  # the retry
            assert [item.status for item in receiver.received] == [503, 200]
            ids = {item.json["alert_id"] for item in receiver.received}
            due = DueAlert("threshold", 0.5)
            start = datetime(2026, 11, 1, tzinfo=UTC)
            computed = {alert_id("team", _revision(s), start, due) for s in (storage, other)}
            assert ids == computed
            assert [a.alert_id for a in budgets_of(other).list_alerts(5)] == sorted(ids)
    finally:
        other.close()


# The namespace schema 13's servers derived alert ids in: receivers hold ids made with it.
_V13_NAMESPACE = uuid.UUID("6f1c0e0a-5b4e-4f0e-9a51-6d6f73616963")


def _v13_alert_id(budget: str, period_start: datetime, threshold: str) -> str:
    return str(uuid.uuid5(_V13_NAMESPACE, f"{budget}|{period_start.isoformat()}|{threshold}"))


def _write_v13_alert(url: str, receiver_url: str) -> str:
    """A budget and its delivered 0.5 alert as a schema 13 server stored them; the alert's id."""
    from mosaicstack_telemetry_server.storage import sqlite_path

    start = datetime(2026, 11, 1, tzinfo=UTC)
    sent = NOW - timedelta(hours=2)
    key = _v13_alert_id("team", start, "0.5")
    budget = ("team", 1000, "month", INSTANCE, None, "[0.5, 0.8]", receiver_url, SECRET, sent)
    alert = (key, "team", start, "threshold", "0.5", "{}", receiver_url, sent, 1, sent,
             "delivered", sent, None)  # fmt: skip
    budget_sql = "INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    alert_sql = "INSERT INTO budget_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    if url.startswith("sqlite"):
        text = lambda row: tuple(  # noqa: E731
            v.isoformat(timespec="microseconds") if isinstance(v, datetime)
            else str(v) if isinstance(v, uuid.UUID) else v
            for v in row
        )  # fmt: skip
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(budget_sql, text(budget))
            conn.execute(alert_sql, text(alert))
    else:
        with psycopg.connect(url) as pg:
            pg.execute(budget_sql.replace("?", "%s"), budget)
            pg.execute(alert_sql.replace("?", "%s"), alert)
    return key


def test_an_upgrade_keeps_the_alerts_sent_and_re_sends_none(database_url: str) -> None:
    from mosaicstack_telemetry_server.storage import open_storage

    old = open_storage(database_url)
    try:
        old.migrate(target=13)
    finally:
        old.close()
    clock = Clock(NOW)
    with webhook_receiver() as receiver:
        sent = _write_v13_alert(database_url, receiver.url)
        assert main(["migrate", "--database", database_url]) == 0
        storage = open_storage(database_url)
        try:
            store = budgets_of(storage)
            assert _revision(storage) == ""
            (kept,) = store.list_alerts(5)
            assert (kept.alert_id, kept.state, kept.revision) == (sent, "delivered", "")
            _spend(storage, NOW - timedelta(days=1), 600)
            service = _service(storage, clock)
            service.check_once()
            service.send_due()
            assert receiver.received == []  # 0.5 was sent before the upgrade
            # The same terms keep the revision: still nothing to send.
            store.put_budget(_budget(receiver.url, thresholds=(0.5, 0.8)))
            _service(storage, clock).check_once()
            assert receiver.received == []
            _spend(storage, NOW - timedelta(hours=1), 250)  # 850 of 1000: 0.8 and the forecast
            service.check_once()
            service.send_due()
            bodies = {body["kind"]: body for body in _verified(receiver)}
            assert sorted(bodies) == ["forecast", "threshold"]
            assert bodies["threshold"]["threshold"] == 0.8
            # Its id is the one a schema 13 server computes: old and new processes agree.
            start = datetime(2026, 11, 1, tzinfo=UTC)
            assert bodies["threshold"]["alert_id"] == _v13_alert_id("team", start, "0.8")
            assert len(store.list_alerts(5)) == 3
        finally:
            storage.close()
