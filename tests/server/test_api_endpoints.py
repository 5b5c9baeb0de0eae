"""Health, predictions, unknown routes, failures of storage and of the server itself."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from _api_helpers import Served, free_port, make_event, serve

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server import __version__
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.runtime import MIGRATE_RETRY_SECONDS, Runtime
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import StorageError, open_storage
from mosaicstack_telemetry_server.storage.sqlite import SQLiteStorage

BATCH = "/v1/events/batch"
PREDICT = "/v1/predictions/batch"
QUERY = {
    "task_type": "implementation",
    "model": "claude-sonnet-4-5",
    "provider": "anthropic",
    "complexity": "medium",
}


def test_health_is_200_without_auth(server: Served) -> None:
    response = httpx.get(server.url + "/v1/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "api_version": "v1",
        "schema_version": "1.0",
        "version": __version__,
    }


def test_health_is_503_and_writes_are_503_when_storage_is_unreachable() -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    with serve_in_thread(ServerSettings(database_url=unreachable)) as url:
        health = httpx.get(url + "/v1/health", timeout=30)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unavailable"
        assert body["error"]["code"] == "unavailable"
        assert "127.0.0.1" not in health.text  # the cause is for the operator's log
        assert int(health.headers["retry-after"]) >= 1
        write = httpx.post(
            url + BATCH,
            json={"events": [make_event(uuid.uuid4())]},
            headers={"Authorization": "Bearer " + "ab" * 32},
            timeout=30,
        )
        assert write.status_code == 503
        assert write.json()["error"]["code"] == "unavailable"
        assert int(write.headers["retry-after"]) >= 1


def test_predictions_over_stored_events_of_every_instance(
    server: Served, api: httpx.Client
) -> None:
    other = uuid.uuid4()
    other_key, _ = server.issue(other)
    mine = [make_event(server.instance_id, actual_input_tokens=1000 * i) for i in range(1, 4)]
    theirs = [make_event(other, actual_input_tokens=1000 * i) for i in range(4, 6)]
    assert api.post(BATCH, json={"events": mine}).status_code == 200
    assert server.client(other_key).post(BATCH, json={"events": theirs}).status_code == 200
    unknown = {**QUERY, "task_type": "documentation"}
    response = api.post(PREDICT, json={"queries": [QUERY, unknown]})
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["metadata"]["fallback_level"] == 0
    assert first["metadata"]["sample_size"] == 5
    assert first["prediction"]["input_tokens"]["median"] == 3000
    assert second == {
        "prediction": None,
        "metadata": second["metadata"] | {"fallback_level": -1, "confidence": "none"},
    }
    assert second["metadata"]["sample_size"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"queries": []},
        {"queries": [QUERY] * 101},
        {"queries": [{**QUERY, "task_type": "juggling"}]},
        {"queries": [{**QUERY, "model": ""}]},
        {"queries": [QUERY, {"task_type": "testing"}]},
        {"query": [QUERY]},
        [QUERY],
    ],
)
def test_invalid_prediction_request_is_422_with_details(
    shared_server: Served, shared_api: httpx.Client, body: object
) -> None:
    response = shared_api.post(PREDICT, json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]
    assert all(set(detail) == {"field", "rule", "message"} for detail in error["details"])


def test_prediction_body_limits_apply_too(shared_api: httpx.Client) -> None:
    response = shared_api.post(
        PREDICT, content=b"[[[", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = shared_api.post(PREDICT, content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/", 404, "not_found"),
        ("GET", "/v2/health", 404, "not_found"),
        ("POST", "/v1/events", 404, "not_found"),
        ("GET", BATCH, 405, "method_not_allowed"),
        ("DELETE", "/v1/health", 405, "method_not_allowed"),
        ("PUT", PREDICT, 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_methods_get_the_contract_error_body(
    shared_server: Served, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, shared_server.url + path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if status == 405:
        assert response.headers["allow"]


class _FailingStorage(SQLiteStorage):
    """A real SQLite storage whose inserts fail: the failures no real database produces on cue."""

    def __init__(self, path: str, failure: Exception) -> None:
        super().__init__(path)
        self.failure = failure

    def insert_events(self, events: Sequence[TaskCompletionEvent]) -> int:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (RuntimeError("secret detail at /srv/telemetry.db"), 500, "internal"),
        (StorageError("disk I/O error at /srv/telemetry.db"), 503, "unavailable"),
    ],
)
def test_failures_get_contract_bodies_without_leaking_details(
    tmp_path: object, failure: Exception, status: int, code: str
) -> None:
    path = str(tmp_path) + "/telemetry.db"
    storage = _FailingStorage(path, failure)
    try:
        storage.migrate()
        instance_id = uuid.uuid4()
        key, _ = issue_api_key(storage, instance_id)
        with serve_in_thread(
            ServerSettings(database_url=f"sqlite:///{path}"), storage=storage
        ) as url:
            response = httpx.post(
                url + BATCH,
                json={"events": [make_event(instance_id)]},
                headers={"Authorization": f"Bearer {key}"},
            )
    finally:
        storage.close()
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "/srv" not in response.text
    assert "Traceback" not in response.text
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1


def test_openapi_describes_auth_bodies_and_error_responses(shared_server: Served) -> None:
    document = httpx.get(shared_server.url + "/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    events = document["paths"][BATCH]["post"]
    assert events["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchEventRequest"
    }
    assert {"200", "207", "400", "401", "413", "415", "422", "429", "503"} <= set(
        events["responses"]
    )
    for path in (BATCH, "/v1/predictions/batch"):
        responses = document["paths"][path]["post"]["responses"]
        assert "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
        assert "WWW-Authenticate" in responses["401"]["headers"]
    health = document["paths"]["/v1/health"]["get"]
    assert "Retry-After" in health["responses"]["503"]["headers"]
    assert "security" not in health
    schemas = document["components"]["schemas"]
    # The reference's defaults: a client may leave these out, the server fills them in.
    assert {"instance_id", "task_type"} <= set(schemas["TaskCompletionEvent"]["required"])
    assert not {"event_id", "timestamp", "schema_version"} & set(
        schemas["TaskCompletionEvent"]["required"]
    )
    # Entries are judged one by one (207), so the document must not promise a 4xx for one.
    items = schemas["BatchEventRequest"]["properties"]["events"]["items"]
    assert items["anyOf"] == [{"$ref": "#/components/schemas/TaskCompletionEvent"}, {}]
    assert "207" in items["description"]


def test_storage_passed_in_stays_open_after_the_server_stops(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    try:
        storage.migrate()
        with serve_in_thread(ServerSettings(database_url=sqlite_url), storage=storage) as url:
            assert httpx.get(url + "/v1/health").status_code == 200
        assert storage.ping()
        assert storage.count_events() == 0
    finally:
        storage.close()


def test_a_server_restarted_on_the_same_file_keeps_its_data(sqlite_url: str) -> None:
    with serve(sqlite_url) as served:
        event = make_event(served.instance_id)
        assert served.client().post(BATCH, json={"events": [event]}).status_code == 200
        key = served.key
    with serve_in_thread(ServerSettings(database_url=sqlite_url)) as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        with client:
            assert client.post(BATCH, json={"events": [event]}).status_code == 200
        storage = open_storage(sqlite_url)
        try:
            assert storage.count_events() == 1
        finally:
            storage.close()


def test_startup_outage_logs_one_error_then_one_info_when_storage_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The database's directory is blocked by a file: SQLite cannot open it until it is removed.
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    storage = SQLiteStorage(str(blocker / "telemetry.db"))
    now = [0.0]
    runtime = Runtime(ServerSettings(database_url="sqlite://"), storage, False, lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="mosaicstack_telemetry_server")
    for _ in range(3):
        with pytest.raises(StorageError, match="cannot be reached"):
            runtime.ensure_ready()
        with pytest.raises(StorageError, match="migration pending"):
            runtime.ensure_ready()  # not due yet: no attempt, no log
        now[0] += MIGRATE_RETRY_SECONDS
    blocker.unlink()
    blocker.mkdir()
    now[0] += MIGRATE_RETRY_SECONDS
    runtime.ensure_ready()
    assert runtime.ready
    levels = [r.levelno for r in caplog.records if r.name == "mosaicstack_telemetry_server"]
    assert levels == [logging.ERROR, logging.DEBUG, logging.DEBUG, logging.INFO]
    storage.close()
