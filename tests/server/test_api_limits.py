"""Request bodies the server must refuse, each with its documented 4xx and contract body."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _api_helpers import Served, make_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.body import MAX_JSON_DEPTH

BATCH = "/v1/events/batch"
MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
GZIP_JSON = {**JSON, "Content-Encoding": "gzip"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def _padded_batch(served: Served, size: int) -> bytes:
    """A valid batch padded (with an ignored field) to exactly `size` bytes."""
    event = make_event(served.instance_id, padding="")
    base = len(json.dumps({"events": [event]}).encode())
    event["padding"] = "x" * (size - base)
    body = json.dumps({"events": [event]}).encode()
    assert len(body) == size
    return body


def test_body_of_exactly_the_limit_is_accepted(shared_server: Served, shared_api: Any) -> None:
    response = shared_api.post(BATCH, content=_padded_batch(shared_server, MIB), headers=JSON)
    assert response.status_code == 200


def test_body_over_the_limit_by_content_length_is_413(
    shared_server: Served, shared_api: httpx.Client
) -> None:
    body = _padded_batch(shared_server, MIB + 1)
    before = shared_server.storage.count_events()
    _error(shared_api.post(BATCH, content=body, headers=JSON), 413, "payload_too_large")
    assert shared_server.storage.count_events() == before


def test_chunked_body_over_the_limit_is_413(
    shared_server: Served, shared_api: httpx.Client
) -> None:
    body = _padded_batch(shared_server, MIB + 100)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    before = shared_server.storage.count_events()
    response = shared_api.post(BATCH, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    _error(response, 413, "payload_too_large")
    assert shared_server.storage.count_events() == before


def test_gzip_bomb_is_413_without_inflating_it(shared_api: httpx.Client) -> None:
    bomb = gzip.compress(b" " * (64 * MIB), compresslevel=9)  # ~64 KiB on the wire
    assert len(bomb) < 100 * 1024
    _error(shared_api.post(BATCH, content=bomb, headers=GZIP_JSON), 413, "payload_too_large")


def test_gzip_body_inflating_to_just_over_the_limit_is_413(
    shared_server: Served, shared_api: httpx.Client
) -> None:
    body = gzip.compress(_padded_batch(shared_server, MIB + 1))
    _error(shared_api.post(BATCH, content=body, headers=GZIP_JSON), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"\x1f\x8b\x08\x00garbage", "not gzip"),
        (gzip.compress(b'{"events": []}', mtime=0)[:-12], "truncated"),
        (zlib.compress(b'{"events": []}'), "zlib, not gzip"),
    ],
)
def test_body_that_is_not_valid_gzip_is_400(
    shared_api: httpx.Client, body: bytes, what: str
) -> None:
    _error(shared_api.post(BATCH, content=body, headers=GZIP_JSON), 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_that_is_not_json_by_content_type_is_415(
    shared_server: Served, shared_api: httpx.Client, content_type: str
) -> None:
    body = json.dumps({"events": [make_event(shared_server.instance_id)]})
    response = shared_api.post(BATCH, content=body, headers={"Content-Type": content_type})
    _error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json; Charset = Utf-8; foo=bar",
    ],
)
def test_json_content_type_with_charset_utf8_is_accepted(
    shared_server: Served, shared_api: httpx.Client, content_type: str
) -> None:
    body = json.dumps({"events": [make_event(shared_server.instance_id)]})
    headers = {"Content-Type": content_type}
    assert shared_api.post(BATCH, content=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "charset"),
    [
        (BATCH, "latin-1"),
        (BATCH, "UTF-16"),
        (BATCH, "us-ascii"),
        (BATCH, ""),
        ("/v1/predictions/batch", "iso-8859-1"),
    ],
)
def test_json_content_type_with_another_charset_is_415_and_stores_nothing(
    shared_server: Served, shared_api: httpx.Client, path: str, charset: str
) -> None:
    event = make_event(shared_server.instance_id)
    body = json.dumps({"events": [event]}).encode("latin-1")
    headers = {"Content-Type": f"application/json; charset={charset}"}
    _error(shared_api.post(path, content=body, headers=headers), 415, "unsupported_media_type")
    assert shared_server.storage.get_event(shared_server.instance_id, event["event_id"]) is None


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, br"])
def test_unsupported_content_encoding_is_415(shared_api: httpx.Client, encoding: str) -> None:
    headers = {**JSON, "Content-Encoding": encoding}
    response = shared_api.post(BATCH, content=b"{}", headers=headers)
    _error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"events": [}',
        b"\xff\xfe{}",  # not UTF-8
        b'{"events": "\xc3\x28"}',  # invalid UTF-8 sequence inside a string
        b'{"events": [NaN]}',
        b'{"events": [Infinity]}',
        b'{"events": [' + b"9" * 5000 + b"]}",  # past Python's int digits limit
    ],
)
def test_body_that_is_not_utf8_json_is_400(shared_api: httpx.Client, body: bytes) -> None:
    _error(shared_api.post(BATCH, content=body, headers=JSON), 400, "invalid_json")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 500_000])
def test_deeply_nested_body_is_400(shared_api: httpx.Client, depth: int) -> None:
    body = b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"
    error = _error(shared_api.post(BATCH, content=body, headers=JSON), 400, "invalid_json")
    assert "nested deeper" in error["message"]


def test_nesting_within_the_limit_is_judged_per_event(shared_api: httpx.Client) -> None:
    inner = MAX_JSON_DEPTH - 2  # the object and the events list take two levels
    body = b'{"events": [' + b"[" * inner + b"]" * inner + b"]}"
    response = shared_api.post(BATCH, content=body, headers=JSON)
    assert response.status_code == 207


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ([], "(body)", "object_type"),
        ("events", "(body)", "object_type"),
        ({}, "events", "missing"),
        ({"events": {}}, "events", "list_type"),
        ({"events": None}, "events", "list_type"),
        ({"events": []}, "events", "too_short"),
        ({"events": [{}] * 101}, "events", "too_long"),
    ],
)
def test_bad_envelope_is_422_and_stores_nothing(
    shared_server: Served, shared_api: httpx.Client, body: Any, field: str, rule: str
) -> None:
    before = shared_server.storage.count_events()
    error = _error(shared_api.post(BATCH, json=body), 422, "invalid_request")
    assert [(d["field"], d["rule"]) for d in error["details"]] == [(field, rule)]
    assert shared_server.storage.count_events() == before


def test_hundred_events_is_the_most_a_batch_holds(
    shared_server: Served, shared_api: httpx.Client
) -> None:
    before = shared_server.storage.count_events()
    events = [make_event(shared_server.instance_id) for _ in range(100)]
    assert shared_api.post(BATCH, json={"events": events}).status_code == 200
    assert shared_server.storage.count_events() == before + 100


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2_000) | _json_values.map(lambda v: json.dumps(v).encode()))
def test_hostile_bodies_never_cause_a_server_error(shared_api: httpx.Client, body: bytes) -> None:
    response = shared_api.post(BATCH, content=body, headers=JSON)
    assert response.status_code in (200, 207, 400, 422)
    if response.status_code >= 400:
        assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entry=st.dictionaries(
        st.sampled_from(["event_id", "instance_id", "task_type", "model", "timestamp", "x"]),
        _json_values,
    )
    | _json_values
)
def test_hostile_events_are_rejected_one_by_one(
    shared_server: Served, shared_api: httpx.Client, entry: Any
) -> None:
    good = make_event(shared_server.instance_id)
    response = shared_api.post(BATCH, json={"events": [entry, good]})
    assert response.status_code == 207
    results = response.json()["results"]
    assert results[0]["status"] == "rejected"
    assert results[0]["error"]
    assert results[1] == {"event_id": good["event_id"], "status": "accepted", "error": None}
