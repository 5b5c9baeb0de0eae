"""Cross-site request forgery: what makes a POST to the dashboard count as our own form.

Two independent checks, both required:
- the browser's own word: a request whose `Origin` is another origin (or `null`), or whose
  `Sec-Fetch-Site` says `cross-site`, is refused whatever it carries;
- a token only our pages know: signed-in forms carry a token derived from the session
  (`sessions.csrf_token_for`); the sign-in form, before any session exists, carries a random
  token that must equal the one in a SameSite=Strict cookie set with the form (double submit),
  so another site cannot sign a victim in to the attacker's key (login CSRF).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

__all__ = ["SIGN_IN_COOKIE", "from_our_origin", "same_token"]

SIGN_IN_COOKIE = "mosaic_dashboard_sign_in"


def from_our_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of this very origin."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:  # browsers send it on every POST today; older ones rely on the token
        return True
    ours = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return hmac.compare_digest(origin.lower().encode(), ours.lower().encode())


def same_token(expected: str | None, given: str | None) -> bool:
    """Whether both tokens are present and equal (compared in constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
