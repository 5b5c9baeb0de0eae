"""`Reply`, what came back for one request, and how a failed one is told in the logs.

I/O-free and without httpx, so the plans that judge replies import nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mosaicstack_telemetry._logs import logger, redact
from mosaicstack_telemetry._redirects import FOLLOWED_STATUSES, MAX_REDIRECTS

__all__ = ["Reply", "describe_failure", "log_reply_failure"]

# Enough of a server's error body for a person to act on; logs are not the place for more.
_MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Reply:
    """What came back for one request: a status, or an error when no response arrived."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    # An error that a retry cannot fix (bad URL, malformed request).
    permanent: bool = False

    def describe(self) -> str:
        """A short reason for logs."""
        if self.status is None:
            return self.error or "no response"
        return f"HTTP {self.status}"


def describe_failure(reply: Reply, secret: str) -> str:
    """A failed request's reason for logs: the status and the server's words, never the key."""
    text = reply.describe()
    location = reply.headers.get("location") if reply.status is not None else None
    if location and 300 <= (reply.status or 0) < 400:
        # A redirect is a setup problem a person must fix: say where the server points.
        text += f" redirect to {location[:_MAX_DETAIL_CHARS]}"
        if reply.status in FOLLOWED_STATUSES:
            text += f" (not followed: more than {MAX_REDIRECTS} redirects, or not to http(s))"
        else:
            text += " (not followed: it would turn the POST into a GET); set server_url to it"
    elif reply.status is not None and reply.body:
        text += ": " + reply.body.decode("utf-8", "replace")
    # Redact first, then cut: a cut first could split the key and let one part through.
    return redact(text, secret)[:_MAX_DETAIL_CHARS]


def log_reply_failure(what: str, reply: Reply, secret: str) -> None:
    """The one WARNING for a failed request, with the reason the server gave when readable."""
    logger.warning("%s (%s)", what, describe_failure(reply, secret))
