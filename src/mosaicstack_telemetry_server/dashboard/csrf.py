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

__all__ = ["SIGN_IN_COOKIE", "from_our_origin", "same_token", "schemes"]

SIGN_IN_COOKIE = "mosaic_dashboard_sign_in"


def schemes(request: Request) -> set[str]:
    """The schemes the browser may have used: the connection's, and the one a TLS-terminating
    proxy reports in `X-Forwarded-Proto`.

    The server trusts no proxy header for anything else (addresses, hosts). Believing this one
    can only make a cookie `Secure` or accept an `https` origin for the very host asked, which
    helps no one forge a request.
    """
    found = {request.url.scheme}
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded in ("http", "https"):
        found.add(forwarded)
    return found


def from_our_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of this very origin."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:  # browsers send it on every POST today; older ones rely on the token
        return True
    host = request.headers.get("host", "")
    given = origin.lower().encode()
    return any(
        hmac.compare_digest(given, f"{scheme}://{host}".lower().encode())
        for scheme in schemes(request)
    )


def same_token(expected: str | None, given: str | None) -> bool:
    """Whether both tokens are present and equal (compared in constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
