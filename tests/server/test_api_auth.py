"""Authentication (401 for every bad key, never echoing it) and per-key rate limits (429)."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import uuid
from typing import Any

import httpx
import pytest
from _api_helpers import Served, make_event, serve, wait_until

from mosaicstack_telemetry_server.access_log import ACCESS_LOGGER
from mosaicstack_telemetry_server.auth import (
    KEY_CACHE_SECONDS,
    KeyVerifier,
    hash_api_key,
    issue_api_key,
)
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.logging_config import JsonFormatter
from mosaicstack_telemetry_server.ratelimit import RateLimiter, retry_after_seconds
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import ApiKeyRecord, Storage, open_storage

BATCH = "/v1/events/batch"
PREDICT = "/v1/predictions/batch"


def _assert_unauthorized(response: httpx.Response, secret: str | None = None) -> None:
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "missing or invalid API key"}
    }
    assert response.headers["www-authenticate"] == "Bearer"
    if secret:
        assert secret not in response.text
        assert secret.lower() not in response.text.lower()


@pytest.mark.parametrize("path", [BATCH, PREDICT])
def test_missing_key_is_401(shared_server: Served, path: str) -> None:
    _assert_unauthorized(httpx.post(shared_server.url + path, json={}))


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Basic " + "a" * 64,
        "Bearer " + "a" * 63,
        "Bearer " + "a" * 65,
        "Bearer " + "g" * 64,
        "Bearer " + "a" * 64 + " extra",
        "bearer" + "a" * 64,
        "Bearer " + "é" * 64,
    ],
)
def test_malformed_key_is_401_without_echoing_it(shared_server: Served, authorization: str) -> None:
    # Raw bytes: latin-1 header values are legal on the wire, though not valid keys.
    response = httpx.post(
        shared_server.url + BATCH,
        json={"events": []},
        headers={"Authorization": authorization.encode("latin-1")},
    )
    token = authorization.partition(" ")[2]
    _assert_unauthorized(response, token if len(token) > 8 else None)


def test_unknown_key_is_401_without_echoing_it(shared_server: Served) -> None:
    unknown = secrets.token_hex(32)
    client = shared_server.client(unknown)
    event = make_event(shared_server.instance_id)
    _assert_unauthorized(client.post(BATCH, json={"events": [event]}), unknown)


def test_key_is_accepted_in_uppercase_and_lowercase_bearer_scheme(shared_server: Served) -> None:
    event = make_event(shared_server.instance_id)
    response = httpx.post(
        shared_server.url + BATCH,
        json={"events": [event]},
        headers={"Authorization": "bearer " + shared_server.key.upper()},
    )
    assert response.status_code == 200


def test_revoked_key_is_401_within_the_cache_bound(server: Served) -> None:
    key, key_id = server.issue()
    client = server.client(key)
    events = {"events": [make_event(server.instance_id)]}
    assert client.post(BATCH, json=events).status_code == 200
    assert server.storage.revoke_api_key(key_id)
    wait_until(
        lambda: client.post(BATCH, json=events).status_code == 401,
        timeout=KEY_CACHE_SECONDS + 5,
        what="the revocation to reach the server",
    )
    _assert_unauthorized(client.post(BATCH, json=events), key)
    # The other key of the same instance is unaffected.
    assert server.client().post(BATCH, json=events).status_code == 200


def test_access_log_names_the_key_id_never_the_key(
    shared_server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        response = shared_server.client().post(
            BATCH, json={"events": [make_event(shared_server.instance_id)]}
        )
        assert response.status_code == 200
        wait_until(lambda: any(r.name == ACCESS_LOGGER for r in caplog.records), what="a log")
    record = next(r for r in caplog.records if r.name == ACCESS_LOGGER)
    line = JsonFormatter().format(record)
    assert f'"key_id": "{shared_server.key_id}"' in line
    assert '"status": 200' in line
    assert '"path": "/v1/events/batch"' in line
    assert shared_server.key not in line
    assert shared_server.key not in caplog.text


def test_rate_limit_answers_429_with_retry_after(sqlite_url: str) -> None:
    with serve(sqlite_url, rate_limit_per_second=0.5, rate_limit_burst=2) as served:
        client = served.client()
        body = {"events": [make_event(served.instance_id)]}
        assert [client.post(BATCH, json=body).status_code for _ in range(2)] == [200, 200]
        limited = client.post(BATCH, json=body)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        # Limits are per key: another key of the same instance is not limited.
        other_key, _ = served.issue()
        assert served.client(other_key).post(BATCH, json=body).status_code == 200


def test_bucket_refills_at_the_configured_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5  # one token back
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") > 0
    now[0] += 3600  # a long idle refills to the burst, no further
    assert [limiter.acquire("k") for _ in range(4)][-1] > 0


def test_buckets_are_per_key_and_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=3, clock=lambda: 0.0)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0
    for key in ("c", "d", "e"):
        limiter.acquire(key)
    assert len(limiter) == 3


def test_bucket_is_thread_safe() -> None:
    limiter = RateLimiter(rate=1e-9, burst=500, clock=lambda: 0.0)
    granted: list[int] = []

    def take() -> None:
        granted.append(sum(1 for _ in range(200) if limiter.acquire("shared") == 0.0))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 500


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_limiter_refuses_nonsense_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        RateLimiter(rate=rate, burst=burst)


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (1.0, 1), (1.2, 2), (30.0, 30)])
def test_retry_after_is_whole_seconds_at_least_one(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


def test_verifier_caches_a_key_for_its_bound_then_sees_revocation(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()
    try:
        from mosaicstack_telemetry_server.auth import issue_api_key

        key, record = issue_api_key(storage, uuid.uuid4(), "cache")
        now = [0.0]
        verifier = KeyVerifier(storage, cache_seconds=2.0, max_cached=1, clock=lambda: now[0])
        assert verifier.verify_cached(f"Bearer {key}") is None  # not verified yet
        assert verifier.verify(f"Bearer {key}") == record
        assert verifier.verify_cached(f"Bearer {key}") == record
        storage.revoke_api_key(record.key_id)
        assert verifier.verify(f"Bearer {key}").key_id == record.key_id  # cached
        now[0] += 2.5
        assert verifier.verify_cached(f"Bearer {key}") is None  # expired from the cache
        with pytest.raises(ApiError) as raised:
            verifier.verify(f"Bearer {key}")
        assert raised.value.status == 401
        assert key not in str(raised.value)
        with pytest.raises(ApiError):
            verifier.verify_cached(f"Bearer {key}")  # revoked, and now cached as such
        with pytest.raises(ApiError):
            verifier.verify_cached("Bearer nope")
        # A second key pushes the first out of a one-entry cache.
        other, other_record = issue_api_key(storage, uuid.uuid4())
        assert verifier.verify(f"Bearer {other}") == other_record
        verifier.forget_all()
        assert verifier.verify(f"Bearer {other}") == other_record
    finally:
        storage.close()


def test_only_the_hash_of_a_key_is_stored(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()
    try:
        from mosaicstack_telemetry_server.auth import issue_api_key

        key, record = issue_api_key(storage, uuid.uuid4(), "hashed")
        assert len(key) == 64
        assert key == key.lower()
        int(key, 16)
        assert record.key_id.startswith("mk_")
        assert key not in repr(record)
        assert storage.find_api_key(hash_api_key(key)) == record
        with pytest.raises(ValueError, match="label"):
            issue_api_key(storage, uuid.uuid4(), "x" * 101)
    finally:
        storage.close()
    with open(sqlite_url.removeprefix("sqlite:///"), "rb") as database:
        assert key.encode() not in database.read()


class LooseLookupStorage:
    """A real storage whose key lookup matches too much (say, a case-folding collation or a
    truncated index): it returns its one key's record for any hash."""

    def __init__(self, inner: Storage, key_hash: str) -> None:
        self.inner = inner
        self.key_hash = key_hash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        return self.inner.find_api_key(self.key_hash)


def test_a_key_is_accepted_only_if_its_full_hash_matches_the_stored_one(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()
    try:
        key, record = issue_api_key(storage, uuid.uuid4(), "real")
        loose = LooseLookupStorage(storage, hash_api_key(key))
        verifier = KeyVerifier(loose)  # type: ignore[arg-type]
        assert verifier.verify(f"Bearer {key}") == record
        impostor = secrets.token_hex(32)
        with pytest.raises(ApiError) as raised:
            verifier.verify(f"Bearer {impostor}")
        assert raised.value.status == 401
        assert verifier.verify_cached(f"Bearer {impostor}") is None  # never cached as valid
    finally:
        storage.close()


def test_a_record_without_its_hash_never_authenticates(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()
    try:
        key, record = issue_api_key(storage, uuid.uuid4(), "bare")
        bare = dataclasses.replace(record, key_hash="")  # as a record built without it

        class BareRecordStorage(LooseLookupStorage):
            def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
                return bare

        verifier = KeyVerifier(BareRecordStorage(storage, ""))  # type: ignore[arg-type]
        with pytest.raises(ApiError):
            verifier.verify(f"Bearer {key}")
        assert verifier.verify_cached(f"Bearer {key}") is None  # refused, not cached
    finally:
        storage.close()


class CountingKeyLookups(LooseLookupStorage):
    """A real storage that counts key lookups (each is a database round trip)."""

    lookups = 0

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        self.lookups += 1
        return self.inner.find_api_key(key_hash)


def test_failed_authentications_are_limited_per_address_before_any_lookup(
    sqlite_url: str,
) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()
    counting = CountingKeyLookups(storage, "")
    settings = ServerSettings(
        database_url=sqlite_url,
        auth_failure_rate_per_second=0.001,  # no refill within the test
        auth_failure_burst=3,
    )
    body = {"events": []}
    try:
        with serve_in_thread(settings, storage=counting) as url:  # type: ignore[arg-type]

            def post(authorization: str, source: str = "127.0.0.1") -> httpx.Response:
                transport = httpx.HTTPTransport(local_address=source)
                with httpx.Client(transport=transport, timeout=30) as client:
                    headers = {"Authorization": authorization}
                    return client.post(url + BATCH, json=body, headers=headers)

            unknown = [f"Bearer {secrets.token_hex(32)}" for _ in range(5)]
            assert [post(key).status_code for key in unknown[:3]] == [401, 401, 401]
            assert counting.lookups == 3
            limited = post(unknown[3])
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            assert counting.lookups == 3  # refused before the database
            # A malformed key costs no lookup: still the plain 401.
            assert post("Bearer nope").status_code == 401
            # Another client address has its own bucket.
            assert post(unknown[4], source="127.0.0.2").status_code == 401
            assert counting.lookups == 4
    finally:
        storage.close()


def test_peek_tells_the_wait_without_taking_a_token() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert limiter.peek("a") == 0.0
    assert len(limiter) == 0  # peeking tracks nothing
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.peek("a") == pytest.approx(0.5)
    assert limiter.peek("a") == pytest.approx(0.5)  # unchanged: nothing taken
    now[0] += 0.5
    assert limiter.peek("a") == 0.0
    assert limiter.acquire("a") == 0.0
