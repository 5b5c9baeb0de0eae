"""Reading harness logs: bounded lines, broken ones counted, timestamps in every form."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mosaicstack_telemetry_agents.harnesses._lines import (
    MAX_LINE_CHARS,
    LineTally,
    as_int,
    bounded_lines,
    json_objects,
    parse_time,
)


def test_an_overlong_line_is_counted_broken_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"a": 1}\n')
        handle.write(b'{"x": "' + b"y" * (MAX_LINE_CHARS + 10) + b'"}\n')
        handle.write(b'{"b": 2}')  # no newline at the end
    tally = LineTally()
    with path.open("rb") as handle:
        objects = list(json_objects(bounded_lines(handle), tally))
    assert objects == [{"a": 1}, {"b": 2}]
    assert (tally.lines, tally.broken) == (3, 1)


def test_a_line_with_no_end_at_all_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"z" * (2 * MAX_LINE_CHARS + 5))
    with path.open("rb") as handle:
        assert list(bounded_lines(handle)) == [b"\x00overlong"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-01T10:00:00Z", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("2026-02-01T10:00:00", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        (1_769_940_000, datetime(2026, 2, 1, 10, tzinfo=UTC)),
        (1_769_940_000_000, datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("yesterday", None),
        (True, None),
        (None, None),
        (1e300, None),
    ],
)
def test_timestamps_in_every_form(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(5, 5), (-3, 0), (2.9, 2), ("7", 0), (True, 0)])
def test_counts_are_non_negative_ints(value: object, expected: int) -> None:
    assert as_int(value) == expected


def test_non_objects_and_deep_nesting_are_broken() -> None:
    tally = LineTally()
    lines = ["[1]", "3", json.dumps({"ok": True}), "[" * 50_000]
    assert list(json_objects(lines, tally)) == [{"ok": True}]
    assert tally.broken == 3
