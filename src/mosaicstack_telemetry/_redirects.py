"""Which redirects the SDK follows, and with which headers: I/O-free rules for both executors.

httpx's own following would turn a POST into a GET on 301/302/303 (as browsers do), which loses
the batch; so the executors follow only 307/308 (method and body kept), at most
`MAX_REDIRECTS` hops, only to http(s), never from https down to http, and send the API key only
where the server_url's origin would get it (same origin, or the same host upgraded to https).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["FOLLOWED_STATUSES", "MAX_REDIRECTS", "headers_for", "redirect_target"]

FOLLOWED_STATUSES = frozenset({307, 308})
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}


def redirect_target(url: str, status: int, headers: Mapping[str, str]) -> str | None:
    """The URL to POST to next after a `status` reply from `url`, or None not to follow."""
    location = headers.get("location")
    if status not in FOLLOWED_STATUSES or not location:
        return None
    import httpx  # only here: the rules' constants must not cost every import of the SDK

    try:
        source = httpx.URL(url)
        target = source.join(location.strip())
    except (httpx.InvalidURL, ValueError):
        return None
    if target.scheme not in ("http", "https") or not target.host:
        return None
    if source.scheme == "https" and target.scheme == "http":
        return None  # telemetry and its key never go out in clear after starting on TLS
    return str(target)


def _port(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def headers_for(origin: str, target: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` for a redirected request: without Authorization when `target` is elsewhere."""
    import httpx

    source, destination = httpx.URL(origin), httpx.URL(target)
    same_origin = (source.scheme, source.host, _port(source)) == (
        destination.scheme,
        destination.host,
        _port(destination),
    )
    upgrade = (
        source.host == destination.host
        and (source.scheme, destination.scheme) == ("http", "https")
        and _port(source) == 80
        and _port(destination) == 443
    )
    if same_origin or upgrade:
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}
