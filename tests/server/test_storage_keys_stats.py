"""API keys and precomputed prediction statistics in storage."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from _storage_helpers import INSTANCE, OTHER_INSTANCE, run_together

from mosaicstack_telemetry_server.storage import (
    WILDCARD,
    StatsKey,
    StatsRow,
    Storage,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row(key: StatsKey, sample_size: int = 10, computed_at: datetime = T0) -> StatsRow:
    return StatsRow(key, sample_size, {"median": sample_size, "note": "é"}, computed_at)


# api keys


def test_created_key_is_found_by_its_hash_only(storage: Storage) -> None:
    created = storage.create_api_key(
        key_id="key_a", key_hash=_hash("secret-a"), instance_id=INSTANCE, label="laptop"
    )
    assert created.is_active
    found = storage.find_api_key(_hash("secret-a"))
    assert found == created
    assert storage.find_api_key(_hash("secret-b")) is None
    # The hash comes back (for the verifier's constant-time check), but is never shown.
    assert found is not None
    assert created.key_hash == found.key_hash == _hash("secret-a")
    assert [key.key_hash for key in storage.list_api_keys()] == [_hash("secret-a")]
    assert _hash("secret-a") not in repr(found)


def test_keys_are_listed_oldest_first(storage: Storage) -> None:
    for index in range(3):
        storage.create_api_key(
            key_id=f"key_{index}", key_hash=_hash(str(index)), instance_id=INSTANCE, label=None
        )
    storage.create_api_key(
        key_id="key_x", key_hash=_hash("x"), instance_id=OTHER_INSTANCE, label=None
    )
    listed = storage.list_api_keys()
    assert [key.key_id for key in listed] == ["key_0", "key_1", "key_2", "key_x"]
    assert [key.created_at for key in listed] == sorted(key.created_at for key in listed)
    assert listed[3].instance_id == OTHER_INSTANCE


def test_revoked_key_is_still_found_but_inactive(storage: Storage) -> None:
    storage.create_api_key(key_id="key_r", key_hash=_hash("r"), instance_id=INSTANCE, label="r")
    assert storage.revoke_api_key("key_r") is True
    assert storage.revoke_api_key("key_r") is False  # no longer active
    found = storage.find_api_key(_hash("r"))
    assert found is not None
    assert not found.is_active
    assert found.revoked_at is not None
    assert found.revoked_at >= found.created_at


def test_revoking_an_unknown_key_is_false(storage: Storage) -> None:
    assert storage.revoke_api_key("nope") is False


def test_duplicate_key_id_or_hash_is_refused_without_echoing_the_hash(storage: Storage) -> None:
    digest = _hash("dup")
    storage.create_api_key(key_id="key_1", key_hash=digest, instance_id=INSTANCE, label=None)
    with pytest.raises(ValueError, match="already exists") as same_hash:
        storage.create_api_key(key_id="key_2", key_hash=digest, instance_id=INSTANCE, label=None)
    assert digest not in str(same_hash.value)
    with pytest.raises(ValueError, match="already exists"):
        storage.create_api_key(
            key_id="key_1", key_hash=_hash("other"), instance_id=INSTANCE, label=None
        )
    assert [key.key_id for key in storage.list_api_keys()] == ["key_1"]


@pytest.mark.parametrize(
    ("key_id", "key_hash", "label", "message"),
    [
        ("", "a" * 64, None, "key_id"),
        ("k" * 65, "a" * 64, None, "key_id"),
        ("key", "A" * 64, None, "key_hash"),
        ("key", "a" * 63, None, "key_hash"),
        ("key", "plain-text-secret", None, "key_hash"),
        ("key", "a" * 64, "l" * 201, "label"),
    ],
)
def test_malformed_key_fields_are_refused(
    storage: Storage, key_id: str, key_hash: str, label: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        storage.create_api_key(key_id=key_id, key_hash=key_hash, instance_id=INSTANCE, label=label)
    assert key_hash not in str(refused.value)
    assert storage.list_api_keys() == []


# prediction statistics


def test_stats_round_trip_with_wildcard_keys(storage: Storage) -> None:
    exact = StatsKey(0, "testing", "gpt-5", "openai", "low")
    no_provider = StatsKey(1, "testing", "gpt-5", WILDCARD, "low")
    task_only = StatsKey(3, "testing", WILDCARD, WILDCARD, WILDCARD)
    rows = [_row(exact, 5), _row(no_provider, 40), _row(task_only, 400)]
    assert storage.replace_stats("testing", 1, T0, rows) is True

    asked = [exact, task_only, StatsKey(2, "testing", "gpt-5", WILDCARD, WILDCARD), task_only]
    found = storage.get_stats(asked)
    assert found == {exact: rows[0], task_only: rows[2]}
    assert storage.get_stats([]) == {}


def test_wildcard_is_not_a_pattern(storage: Storage) -> None:
    storage.replace_stats("testing", 1, T0, [_row(StatsKey(0, "testing", "m", "openai", "low"))])
    assert storage.get_stats([StatsKey(0, "testing", WILDCARD, "openai", "low")]) == {}


def test_newer_stats_replace_all_rows_of_the_task_type(storage: Storage) -> None:
    old = StatsKey(0, "testing", "old-model", "openai", "low")
    kept = StatsKey(3, "planning", WILDCARD, WILDCARD, WILDCARD)
    new = StatsKey(0, "testing", "new-model", "openai", "low")
    storage.replace_stats("testing", 1, T0, [_row(old)])
    storage.replace_stats("planning", 7, T0, [_row(kept)])

    later = T0 + timedelta(minutes=5)
    assert storage.replace_stats("testing", 2, later, [_row(new, 11, later)]) is True
    assert storage.get_stats([old, new, kept]) == {
        new: _row(new, 11, later),
        kept: _row(kept),
    }
    assert storage.stats_versions() == {"testing": (2, later), "planning": (7, T0)}


@pytest.mark.parametrize("stale_version", [1, 3])
def test_stats_of_an_older_or_equal_version_change_nothing(
    storage: Storage, stale_version: int
) -> None:
    current = StatsKey(0, "testing", "m", "openai", "low")
    storage.replace_stats("testing", 3, T0, [_row(current)])
    stale = StatsKey(0, "testing", "stale", "openai", "low")
    later = T0 + timedelta(hours=1)
    assert storage.replace_stats("testing", stale_version, later, [_row(stale)]) is False
    assert storage.get_stats([current, stale]) == {current: _row(current)}
    assert storage.stats_versions() == {"testing": (3, T0)}


def test_concurrent_replacements_keep_the_newest(storage: Storage) -> None:
    def replace(version: int) -> bool:
        key = StatsKey(0, "testing", f"v{version}", "openai", "low")
        return storage.replace_stats("testing", version, T0, [_row(key, version)])

    run_together(6, replace)
    assert storage.stats_versions()["testing"][0] == 5
    keys = [StatsKey(0, "testing", f"v{v}", "openai", "low") for v in range(6)]
    assert list(storage.get_stats(keys)) == [keys[5]]


def test_stats_at_level_returns_that_level_of_every_task_type(storage: Storage) -> None:
    exact = StatsKey(0, "testing", "m", "openai", "low")
    other = StatsKey(0, "planning", "n", "anthropic", "high")
    task_only = StatsKey(3, "testing", WILDCARD, WILDCARD, WILDCARD)
    storage.replace_stats("testing", 1, T0, [_row(exact, 5), _row(task_only, 50)])
    storage.replace_stats("planning", 1, T0, [_row(other, 7)])
    found = storage.stats_at_level(0)
    assert sorted(found, key=lambda r: r.key.task_type) == [_row(other, 7), _row(exact, 5)]
    assert storage.stats_at_level(3) == [_row(task_only, 50)]
    assert storage.stats_at_level(1) == []


def test_stats_rows_of_another_task_type_are_refused(storage: Storage) -> None:
    stray = _row(StatsKey(0, "planning", "m", "openai", "low"))
    with pytest.raises(ValueError, match="planning"):
        storage.replace_stats("testing", 1, T0, [stray])
    assert storage.stats_versions() == {}


def test_stats_times_come_back_in_utc(storage: Storage) -> None:
    offset = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    key = StatsKey(3, "testing", WILDCARD, WILDCARD, WILDCARD)
    storage.replace_stats("testing", 1, offset, [_row(key, computed_at=offset)])
    _, computed_at = storage.stats_versions()["testing"]
    assert computed_at == offset
    assert computed_at.utcoffset() == timedelta(0)
    assert storage.get_stats([key])[key].computed_at.utcoffset() == timedelta(0)


def test_touch_stats_restamps_every_row_of_that_task_type_only(storage: Storage) -> None:
    exact = StatsKey(0, "testing", "m", "openai", "low")
    task_only = StatsKey(3, "testing", WILDCARD, WILDCARD, WILDCARD)
    other = StatsKey(3, "planning", WILDCARD, WILDCARD, WILDCARD)
    storage.replace_stats("testing", 4, T0, [_row(exact, 5), _row(task_only, 50)])
    storage.replace_stats("planning", 2, T0, [_row(other)])

    later = T0 + timedelta(minutes=10)
    assert storage.touch_stats("testing", 4, later) is True
    assert storage.stats_versions() == {"testing": (4, later), "planning": (2, T0)}
    assert storage.get_stats([exact, task_only, other]) == {
        exact: _row(exact, 5, later),
        task_only: _row(task_only, 50, later),
        other: _row(other),
    }


@pytest.mark.parametrize(
    ("version", "offset"),
    [(3, 60), (5, 60), (4, 0), (4, -60)],
    ids=["older-version", "newer-version", "same-time", "earlier-time"],
)
def test_touch_stats_changes_nothing_unless_same_version_and_later_time(
    storage: Storage, version: int, offset: int
) -> None:
    key = StatsKey(0, "testing", "m", "openai", "low")
    storage.replace_stats("testing", 4, T0, [_row(key)])
    assert storage.touch_stats("testing", version, T0 + timedelta(seconds=offset)) is False
    assert storage.stats_versions() == {"testing": (4, T0)}
    assert storage.get_stats([key]) == {key: _row(key)}


def test_touch_stats_of_a_task_type_without_statistics_is_false(storage: Storage) -> None:
    assert storage.touch_stats("testing", 1, T0) is False
    assert storage.stats_versions() == {}


def test_touch_stats_racing_a_replacement_never_resurrects_an_old_version(
    storage: Storage,
) -> None:
    key = StatsKey(0, "testing", "m", "openai", "low")
    storage.replace_stats("testing", 1, T0, [_row(key)])
    later = T0 + timedelta(seconds=30)

    def act(index: int) -> bool:
        if index % 2:
            return storage.touch_stats("testing", 1, later + timedelta(seconds=index))
        newer = StatsKey(0, "testing", "new", "openai", "low")
        return storage.replace_stats("testing", 2, later, [_row(newer, 2, later)])

    run_together(6, act)
    # Whatever the order, the newest version stands with its own rows and time: a re-stamp
    # of version 1 either came first (then was replaced) or was refused.
    assert storage.stats_versions()["testing"] == (2, later)
    assert list(storage.get_stats([key, StatsKey(0, "testing", "new", "openai", "low")])) == [
        StatsKey(0, "testing", "new", "openai", "low")
    ]
