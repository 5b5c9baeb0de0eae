"""Dashboard sessions in storage (both backends): opened, found, expired, ended, purged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.dashboard.sessions import SessionStore, csrf_token_for
from mosaicstack_telemetry_server.storage import Storage


class Clock:
    """A settable clock for expiry."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_session_finds_its_key_until_it_ends(storage: Storage) -> None:
    _, record = issue_api_key(storage, uuid.uuid4(), "dash")
    sessions = SessionStore(storage)
    token = sessions.open(record)
    found = sessions.find(token)
    assert found is not None
    assert found.key_id == record.key_id
    sessions.end(token)
    assert sessions.find(token) is None
    sessions.end(token)  # ending twice is harmless


def test_only_a_hash_of_the_token_is_stored(storage: Storage) -> None:
    _, record = issue_api_key(storage, uuid.uuid4(), "dash")
    token = SessionStore(storage).open(record)
    # The token itself is not a key of the table: only its hash is.
    assert storage.find_dashboard_session(token, datetime.now(UTC)) is None


def test_a_session_expires_after_its_lifetime(storage: Storage) -> None:
    _, record = issue_api_key(storage, uuid.uuid4(), "dash")
    clock = Clock()
    sessions = SessionStore(storage, lifetime_seconds=60, clock=clock)
    token = sessions.open(record)
    clock.now += timedelta(seconds=59)
    assert sessions.find(token) is not None
    clock.now += timedelta(seconds=1)
    assert sessions.find(token) is None


def test_expired_sessions_are_purged_when_another_opens(storage: Storage) -> None:
    _, record = issue_api_key(storage, uuid.uuid4(), "dash")
    clock = Clock()
    sessions = SessionStore(storage, lifetime_seconds=60, clock=clock)
    old = sessions.open(record)
    clock.now += timedelta(hours=1)
    sessions.open(record)
    clock.now -= timedelta(hours=1)  # even seen from before its expiry, it is gone
    assert sessions.find(old) is None


def test_revoking_the_key_ends_its_sessions(storage: Storage) -> None:
    _, record = issue_api_key(storage, uuid.uuid4(), "dash")
    sessions = SessionStore(storage)
    token = sessions.open(record)
    assert storage.revoke_api_key(record.key_id)
    assert sessions.find(token) is None


@pytest.mark.parametrize("token", [None, "", "a" * 63, "a" * 65, "-" * 64, "0" * 64])
def test_malformed_or_unknown_tokens_find_nothing(storage: Storage, token: str | None) -> None:
    sessions = SessionStore(storage)
    assert sessions.find(token) is None
    sessions.end(token)


def test_csrf_tokens_differ_per_session_and_never_are_the_token() -> None:
    first, second = "a" * 64, "b" * 64
    assert csrf_token_for(first) != csrf_token_for(second)
    assert csrf_token_for(first) == csrf_token_for(first)
    assert first not in csrf_token_for(first)
