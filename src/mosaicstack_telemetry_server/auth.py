"""API keys: how they are made, stored and checked.

A key is 64 lowercase hex characters (`secrets.token_hex(32)`, 256 random bits). Only its
SHA-256 is stored. A slow password KDF (bcrypt, scrypt, argon2) exists to make guessing a
*low-entropy* secret from its hash expensive; a uniformly random 256-bit key cannot be guessed
whatever the hash costs, so a fast hash loses nothing and lets every request be checked cheaply
and looked up by an index on the hash.

Verified keys are cached in-process for `KEY_CACHE_SECONDS`: a revocation (from the CLI, or
another process) takes effect on a running server within that bound.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID

from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage

__all__ = [
    "KEY_CACHE_SECONDS",
    "KeyVerifier",
    "hash_api_key",
    "issue_api_key",
    "new_key_id",
]

KEY_CACHE_SECONDS = 2.0
# Longest label the CLI accepts: it is shown in listings, nothing more.
MAX_LABEL_CHARS = 100

# Uppercase is accepted and folded: some clients validate keys case-insensitively (hex is hex).
_KEY = re.compile(r"[0-9a-fA-F]{64}")
# One message for every failure, so a caller learns nothing about which keys exist.
_UNAUTHORIZED = "missing or invalid API key"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of a key: the only form in which keys are stored."""
    return hashlib.sha256(key.lower().encode("ascii")).hexdigest()


def new_key_id() -> str:
    """A short random public id for listing and revoking a key (not secret, not the key)."""
    return "mk_" + secrets.token_hex(6)


def issue_api_key(
    storage: Storage, instance_id: UUID | None, label: str | None = None, *, admin: bool = False
) -> tuple[str, ApiKeyRecord]:
    """Create a key: returns the key (shown once, never stored) and its record.

    An instance key (`admin=False`) is bound to `instance_id`; an admin key (`admin=True`) to
    no instance, so `instance_id` must then be None.
    """
    if label is not None and (len(label) > MAX_LABEL_CHARS or not label.isprintable()):
        raise ValueError(f"label must be at most {MAX_LABEL_CHARS} printable characters")
    if admin != (instance_id is None):
        raise ValueError("an instance key needs an instance_id; an admin key must have none")
    key = secrets.token_hex(32)
    record = storage.create_api_key(
        key_id=new_key_id(),
        key_hash=hash_api_key(key),
        instance_id=instance_id,
        label=label,
        role="admin" if admin else "instance",
    )
    return key, record


def _unauthorized() -> ApiError:
    return ApiError(401, _UNAUTHORIZED, code="unauthorized", headers=_CHALLENGE)


class KeyVerifier:
    """Turns an `Authorization` header into the key's record, or raises a 401 `ApiError`.

    Thread-safe. Only keys found in storage are cached (active or revoked), so the cache is
    bounded by the number of real keys, and unknown keys cannot fill it.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        cache_seconds: float = KEY_CACHE_SECONDS,
        max_cached: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._cache_seconds = cache_seconds
        self._max_cached = max_cached
        self._clock = clock
        self._cache: OrderedDict[str, tuple[ApiKeyRecord, float]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> ApiKeyRecord:
        """The active key presented as `Bearer <key>`; 401 when missing, malformed, unknown or
        revoked. Calls storage (blocking): run it off the event loop."""
        key = _bearer_token(authorization)
        if key is None:
            raise _unauthorized()
        key_hash = hash_api_key(key)
        record = self._cached(key_hash)
        if record is None:
            # The lookup is the database's equality on the hash's index, not constant time:
            # timing may reveal something about a *hash*, which does not help anyone find a key
            # (that needs a SHA-256 preimage). The key itself is never compared.
            record = self._storage.find_api_key(key_hash)
            if record is None or not _same_hash(record, key_hash):
                raise _unauthorized()  # and not cached: only real keys take cache room
            self._remember(key_hash, record)
        _check(record, key_hash)
        return record

    def verify_cached(self, authorization: str | None) -> ApiKeyRecord | None:
        """Like `verify` from the cache alone (never blocks): the record, a 401 `ApiError`, or
        None when only storage can tell."""
        key = _bearer_token(authorization)
        if key is None:
            raise _unauthorized()
        key_hash = hash_api_key(key)
        record = self._cached(key_hash)
        if record is not None:
            _check(record, key_hash)
        return record

    def forget_all(self) -> None:
        """Drop every cached verification (the next request of each key reads storage)."""
        with self._lock:
            self._cache.clear()

    def _cached(self, key_hash: str) -> ApiKeyRecord | None:
        now = self._clock()
        with self._lock:
            cache = self._cache
            # Oldest first: drop expired entries from the front, stop at the first live one
            # (without copying the whole cache on every request).
            while cache and next(iter(cache.values()))[1] <= now:
                cache.popitem(last=False)
            entry = cache.get(key_hash)
        if entry is None:
            return None
        record, _expires = entry
        return record

    def _remember(self, key_hash: str, record: ApiKeyRecord) -> None:
        with self._lock:
            self._cache[key_hash] = (record, self._clock() + self._cache_seconds)
            self._cache.move_to_end(key_hash)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)


def _check(record: ApiKeyRecord, key_hash: str) -> None:
    """401 unless the record is active and its stored hash is the presented key's.

    Whatever found the record (an index, a cache), the final say is a constant-time comparison
    of the full hashes: no lookup quirk (a collation, a truncated index) can let another key in.
    """
    if not _same_hash(record, key_hash) or not record.is_active:
        raise _unauthorized()


def _same_hash(record: ApiKeyRecord, key_hash: str) -> bool:
    return hmac.compare_digest(record.key_hash, key_hash)


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _KEY.fullmatch(token):
        return None
    return token.lower()
