"""Sending one alert to its webhook: a signed JSON `POST`, no redirect followed.

The signature is `X-Mosaic-Signature: sha256=<hex HMAC-SHA256 of the raw body>` under the
budget's secret, so a receiver that recomputes it detects a body changed on the way or sent by
someone without the secret. Redirects are not followed (a 3xx counts as a failure): the URL
was checked to be http or https when set, and a redirect could lead anywhere else. The URL is
never logged: a Slack webhook URL is itself a credential.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import httpx

__all__ = ["SIGNATURE_HEADER", "Outcome", "post_alert", "signature"]

SIGNATURE_HEADER = "X-Mosaic-Signature"
# Short: the sender delivers one alert at a time, and a slow receiver is retried later.
_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: delivered (a 2xx) or why not, in words safe to store."""

    delivered: bool
    error: str | None = None


def signature(body: bytes, secret: str) -> str:
    """The header's value for `body` under `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post_alert(client: httpx.Client, url: str, body: str, secret: str | None) -> Outcome:
    """POST the alert; never raises."""
    raw = body.encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(raw, secret)
    try:
        response = client.post(url, content=raw, headers=headers, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        return Outcome(False, f"no answer: {type(exc).__name__}")
    if 200 <= response.status_code < 300:
        return Outcome(True)
    return Outcome(False, f"HTTP {response.status_code}")
