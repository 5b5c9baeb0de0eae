"""Dashboard sessions: a random token in a cookie, its hash in the database.

API processes are stateless and several may serve one database, so a session lives in the
database (`dashboard_sessions`), not in one process's memory: any process can check it, and
signing out ends it everywhere. Only the token's SHA-256 is stored, as for API keys: a copy of
the table lets no one sign in. A session is bound to the hash of the key that opened it and
checked against that key on every page, so revoking the key ends its sessions too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage

__all__ = ["SESSION_COOKIE", "SESSION_SECONDS", "SessionStore", "csrf_token_for"]

SESSION_COOKIE = "mosaic_dashboard_session"
# An absolute lifetime, like a working day: long enough not to nag, short enough that a
# forgotten browser does not stay signed in for good.
SESSION_SECONDS = 12 * 3600
# A token is 32 random bytes as hex; anything else in the cookie is not worth a lookup.
_TOKEN_CHARS = 64


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a session's forms: derived from its secret token, so a page from
    another site cannot know it, and no second secret has to be stored."""
    return hmac.new(session_token.encode("ascii"), b"dashboard-csrf", hashlib.sha256).hexdigest()


@dataclass
class SessionStore:
    """Opens, finds and ends sessions in storage (blocking calls: run them off the loop)."""

    storage: Storage
    lifetime_seconds: int = SESSION_SECONDS
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def open(self, key: ApiKeyRecord) -> str:
        """A new session for a verified key: returns its token (for the cookie only)."""
        token = secrets.token_hex(32)
        now = self.clock()
        expires = now + timedelta(seconds=self.lifetime_seconds)
        self.storage.create_dashboard_session(_hash(token), key.key_hash, now, expires)
        return token

    def find(self, token: str | None) -> ApiKeyRecord | None:
        """The active key behind a live session, or None (no, expired or ended session, or
        a key revoked since)."""
        if token is None or not _well_formed(token):
            return None
        key_hash = self.storage.find_dashboard_session(_hash(token), self.clock())
        if key_hash is None:
            return None
        record = self.storage.find_api_key(key_hash)
        if record is None or not record.is_active:
            return None
        if not hmac.compare_digest(record.key_hash, key_hash):
            return None
        return record

    def end(self, token: str | None) -> None:
        """End a session (sign-out); nothing happens for an unknown token."""
        if token is not None and _well_formed(token):
            self.storage.delete_dashboard_session(_hash(token))


def _well_formed(token: str) -> bool:
    """Whether a cookie's value can be a token we issued: lowercase hex of the right length.

    Not `isalnum()`: that admits non-ASCII letters, which the ASCII hash refuses with an error.
    """
    return len(token) == _TOKEN_CHARS and all(char in "0123456789abcdef" for char in token)
