"""Rendering: the Jinja environment over the package's templates, and the headers every
dashboard response carries.

Pages are private to the signed-in key and hold no script from anywhere: the policy allows only
this origin's files, forbids framing (clickjacking) and inline scripts, and no page is cached.
The referrer policy is `same-origin`, not `no-referrer`: with the latter, browsers send
`Origin: null` on our own form posts, which `csrf.py` must refuse.
"""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.responses import HTMLResponse, RedirectResponse, Response

__all__ = ["SECURITY_HEADERS", "redirect", "render"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("mosaicstack_telemetry_server.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/<template>`, with the security headers."""
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str) -> Response:
    """303 See Other: after a POST the browser GETs the next page (no resubmission)."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
