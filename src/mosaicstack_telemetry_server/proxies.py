"""Trusted reverse proxies: whose `X-Forwarded-For` names the client (`--trusted-proxy CIDR`).

Only a request whose TCP peer is inside one of the trusted networks has its client address
taken from `X-Forwarded-For` (the right-most address that is not itself a trusted proxy, so a
client cannot forge its way past the proxy that appended the real one). Every other request
keeps its TCP peer, whatever headers it sends. The address so found is what the
failed-authentication limit buckets by and what the access log writes.

The rewriting itself is uvicorn's `ProxyHeadersMiddleware` (a well-tested implementation of
exactly this rule); this module validates the operator's CIDRs, which uvicorn would silently
treat as host names when malformed.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["MAX_TRUSTED_PROXIES", "TrustedProxies", "parse_trusted_proxies"]

# A list longer than this is a mistake (a whole address plan pasted in), not a proxy tier.
MAX_TRUSTED_PROXIES = 100


def parse_trusted_proxies(text: str) -> list[str]:
    """The normalized networks of a comma-separated CIDR list; ValueError names a bad one.

    A bare address is a network of one (`10.0.0.7` is `10.0.0.7/32`).
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > MAX_TRUSTED_PROXIES:
        raise ValueError(f"at most {MAX_TRUSTED_PROXIES} trusted proxies, not {len(items)}")
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(
                f"trusted proxy {item[:60]!r} is not an IP address or CIDR network "
                "(for example 10.0.0.0/8 or 192.0.2.7)"
            ) from None
    return networks


class TrustedProxies:
    """ASGI middleware: the client address from `X-Forwarded-For` of trusted peers only."""

    def __init__(self, app: ASGIApp, networks: list[str]) -> None:
        # Imported here: the command line parses CIDRs with this module, server extra or not.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app = app
        # No network trusted: no rewriting at all, not even of X-Forwarded-Proto.
        self._rewrite: Any = (
            ProxyHeadersMiddleware(app, trusted_hosts=networks)  # type: ignore[arg-type]
            if networks
            else app
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite `scope["client"]` when the peer is trusted, then pass the request on."""
        await self._rewrite(scope, receive, send)
