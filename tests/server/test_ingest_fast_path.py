"""A batch body of known fields is judged in one pydantic-core call (`ingest.judge_body`); it
must answer and store exactly what judging each entry from `json.loads` does.

Each example posts the same body to two real SQLite databases, one through `ingest_body` (the
fast path, falling back to the general one), one through the general path alone
(`parse_envelope(decode_json(...))` then `ingest_batch`): the answers, the errors and, at the
end, every stored event must be the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _api_helpers import make_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.body import decode_json
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.ingest import (
    _KnownFieldsBatch,
    ingest_batch,
    ingest_body,
    parse_envelope,
)
from mosaicstack_telemetry_server.storage.sqlite import SQLiteStorage

INSTANCE = uuid.UUID("6f1c2a9e-0b7d-4c55-9a51-2d8e3f4a5b6c")
OTHER = uuid.UUID("0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a")

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# Valid spellings of the ids and times (the valid bodies below use them alone).
_UUID_SPELLINGS = [
    "6F1C2A9E-0B7D-4C55-9A51-2D8E3F4A5B6C",
    "6f1c2a9e0b7d4c559a512d8e3f4a5b6c",
    "{6f1c2a9e-0b7d-4c55-9a51-2d8e3f4a5b6c}",
    "urn:uuid:6f1c2a9e-0b7d-4c55-9a51-2d8e3f4a5b6c",
]
_INSTANCES = st.sampled_from([str(OTHER), str(INSTANCE).upper(), INSTANCE.hex])
_TIMES = [
    "2026-01-02T03:04:05+05:30",
    "2026-01-02T03:04:05",
    "2026-01-02",
    "2019-12-31T23:59:59Z",  # valid, refused as implausible
    "2999-01-01T00:00:00Z",
    1767323045,
    "2026-01-02T03:04:05.123456789Z",
]
# Values a sender gets wrong, or right in another spelling, field by field.
_ODD = {
    "event_id": st.sampled_from([*_UUID_SPELLINGS, "not-a-uuid"]),
    "instance_id": _INSTANCES,
    "schema_version": st.sampled_from(["1.1", "2.0", "1", ""]),
    "timestamp": st.sampled_from([*_TIMES, "0001-01-01T00:00:00+05:00"]),
    "context_utilization_final": st.sampled_from([0, 1, 0.5, -0.0, 1.5, "0.5", True]),
    "quality_gates_run": st.sampled_from([[], ["lint"], ["build", "build"], ["nope"], "build"]),
    "task_type": st.sampled_from(["debugging", "DEBUGGING", "nope", 3]),
    "actual_input_tokens": st.sampled_from([0, 10**7, 10**12, -1, 1.0, "5", True]),
    "model": st.sampled_from(["m", "", "x" * 101, "tab\there", "\ud800", "é"]),
    "project": st.sampled_from(["acme/app", "", "x" * 201, "\ud800", None]),
    "cache_read_tokens": st.sampled_from([0, 5, -1, None, 1.5]),
}
_FIELDS = sorted(make_event(INSTANCE).keys() | _ODD.keys())


@st.composite
def _entry(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(_json)  # not an object at all, now and then
    event: dict[str, Any] = make_event(INSTANCE, event_id=str(draw(st.uuids())))
    # Mostly other spellings (most still valid: the fast path's own ground), else anything.
    for name in draw(st.lists(st.sampled_from(sorted(_ODD)), max_size=2, unique=True)):
        event[name] = draw(_ODD[name])
    if draw(st.integers(0, 2)):
        return event
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=4, unique=True)):
        change = draw(st.integers(0, 3))
        # Without an id or a time each path makes its own (random, now): not comparable.
        if change == 0 and name not in ("event_id", "timestamp"):
            event.pop(name, None)
        elif change == 1 and name in _ODD:
            event[name] = draw(_ODD[name])
        else:
            event[name] = draw(_json)
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.text(min_size=1, max_size=6))] = draw(_json)  # a field nobody knows
    return event


@st.composite
def _body(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(_entry(), min_size=1, max_size=3))
    if draw(st.integers(0, 4)) == 0:
        entries.append(entries[0])  # the same event twice in one batch
    envelope: Any = {"events": entries}
    shape = draw(st.integers(0, 14))
    if shape == 0:
        envelope["extra"] = draw(_json)
    elif shape == 1:
        envelope = {"events": entries[0]}
    elif shape == 2:
        envelope = entries
    text = json.dumps(envelope, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


# Valid spellings only: bodies the fast path takes, whose verdicts still differ (the key's
# instance or another, a plausible time or not, schema 1.0 or 1.1).
_VALID = {
    "event_id": st.sampled_from(_UUID_SPELLINGS),
    "instance_id": _INSTANCES,
    "schema_version": st.sampled_from(["1.0", "1.1", "1.2"]),
    "timestamp": st.sampled_from(_TIMES),
    "context_utilization_final": st.sampled_from([0, 1, 0.25, -0.0, 1e-300]),
    "quality_gates_run": st.sampled_from([[], ["lint"], ["build", "build"]]),
    "actual_input_tokens": st.integers(0, 10**7),
    "model": st.text(min_size=1, max_size=20),
    "project": st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    "branch": st.sampled_from(["main", "feature/x", "é"]),
    "cache_read_tokens": st.integers(0, 10**7),
    "reasoning_tokens": st.none(),
}


@st.composite
def _valid_body(draw: st.DrawFn) -> bytes:
    entries = []
    for _ in range(draw(st.integers(1, 5))):
        event = make_event(INSTANCE, event_id=str(draw(st.uuids())))
        if draw(st.booleans()):
            del event["schema_version"]  # 1.0, or 1.1 when it carries a 1.1 field
        for name in draw(st.lists(st.sampled_from(sorted(_VALID)), max_size=4, unique=True)):
            event[name] = draw(_VALID[name])
        entries.append(event)
    text = json.dumps({"events": entries}, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def _general(storage: SQLiteStorage, raw: bytes) -> tuple[int, Any]:
    return ingest_batch(storage, parse_envelope(decode_json(raw), "events"), INSTANCE)


def _answer(call: Any) -> tuple[Any, ...]:
    try:
        status, response = call()
    except ApiError as exc:
        return ("error", exc.status, exc.message, exc.code, exc.details)
    return (status, response.model_dump(mode="json"))


@pytest.fixture(scope="module")
def storages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStorage, ...]]:
    folder: Path = tmp_path_factory.mktemp("fast-path")
    pair = (SQLiteStorage(folder / "fast.db"), SQLiteStorage(folder / "general.db"))
    for storage in pair:
        storage.migrate()
    yield pair
    for storage in pair:
        storage.close()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(_body(), _valid_body()))
def test_the_fast_path_answers_and_stores_what_the_general_one_does(
    storages: tuple[SQLiteStorage, SQLiteStorage], raw: bytes
) -> None:
    fast, general = storages
    assert _answer(lambda: ingest_body(fast, raw, INSTANCE)) == _answer(
        lambda: _general(general, raw)
    )


def test_after_every_example_both_databases_hold_the_same_events(
    storages: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    # Runs after the property (file order): the same events, field for field.
    fast, general = storages
    pages = [
        [
            event.model_dump()
            for _, event in storage.export_events(
                instance_id=None, start=None, end=None, after=0, limit=100_000
            )
        ]
        for storage in storages
    ]
    assert pages[0] == pages[1]
    assert fast.count_events() == general.count_events()


def test_a_clean_batch_takes_the_fast_path_with_schema_1_1_fields_too() -> None:
    # Not a vacuous property: the bodies agents send are the ones the fast path takes.
    events = [
        make_event(INSTANCE),
        make_event(
            INSTANCE,
            schema_version="1.1",
            project="acme/app",
            branch="main",
            user="ana",
            cache_read_tokens=10,
            cache_write_tokens=0,
            reasoning_tokens=3,
        ),
        {k: v for k, v in make_event(INSTANCE).items() if k not in ("event_id", "timestamp")},
    ]
    batch = _KnownFieldsBatch.model_validate_json(json.dumps({"events": events}))
    assert [e.schema_version for e in batch.events] == ["1.0", "1.1", "1.0"]


def test_an_unknown_field_or_a_deep_one_takes_the_general_path_and_its_limits(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(tmp_path / "t.db")
    try:
        storage.migrate()
        deep: Any = "x"
        for _ in range(40):
            deep = [deep]
        raw = json.dumps({"events": [make_event(INSTANCE, note=deep)]}).encode()
        with pytest.raises(ApiError, match="nested deeper than 32 levels"):
            ingest_body(storage, raw, INSTANCE)
        raw = json.dumps({"events": [make_event(INSTANCE, note={"a": 1})]}).encode()
        status, response = ingest_body(storage, raw, INSTANCE)
        assert (status, response.accepted) == (200, 1)  # unknown fields are ignored, as before
        assert storage.count_events() == 1
    finally:
        storage.close()
