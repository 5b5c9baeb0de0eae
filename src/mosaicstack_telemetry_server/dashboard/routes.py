"""The dashboard's routes under `/dashboard`: sign-in, sign-out, the overview, the explorer.

Signing in takes a key in a POSTed form (never a URL), checks it with the API's verifier and
rate limit on failures (one bucket per client address, shared with failed API
authentications), then sets a session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS.
Every POST passes `csrf.py`'s checks. Storage calls run in the thread pool.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import Response

from mosaicstack_telemetry_server.dashboard import budgets, explorer, overview
from mosaicstack_telemetry_server.dashboard.csrf import (
    SIGN_IN_COOKIE,
    from_our_origin,
    same_token,
    schemes,
)
from mosaicstack_telemetry_server.dashboard.forms import FormError, read_form
from mosaicstack_telemetry_server.dashboard.pages import redirect, render
from mosaicstack_telemetry_server.dashboard.sessions import (
    SESSION_COOKIE,
    SessionStore,
    csrf_token_for,
)
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.ratelimit import retry_after_seconds
from mosaicstack_telemetry_server.routes.access import runtime_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["PREFIX", "install_dashboard"]

PREFIX = "/dashboard"
_SIGN_IN = f"{PREFIX}/sign-in"
_STATIC = Path(__file__).parent / "static"

Page = Callable[[Request, ApiKeyRecord, str], Awaitable[Response]]


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure="https" in schemes(request),
    )


async def _session(request: Request) -> tuple[ApiKeyRecord, str] | None:
    """The signed-in key and the session token, or None."""
    runtime = runtime_of(request)
    if not runtime.ready:
        await run_in_threadpool(runtime.ensure_ready)
    token = request.cookies.get(SESSION_COOKIE)
    record = await run_in_threadpool(SessionStore(runtime.storage).find, token)
    return None if record is None or token is None else (record, token)


def _signed_in(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for signed-in keys only; others are sent to the sign-in form."""

    async def endpoint(request: Request) -> Response:
        session = await _session(request)
        if session is None:
            return redirect(_SIGN_IN)
        record, token = session
        return await page(request, record, csrf_token_for(token))

    endpoint.__doc__ = page.__doc__
    return endpoint


def _sign_in_form(request: Request, status: int = 200, error: str | None = None) -> Response:
    token = secrets.token_hex(32)
    response = render("sign_in.html", status, csrf=token, error=error, prefix=PREFIX)
    _set_cookie(request, response, SIGN_IN_COOKIE, token, 3600)
    return response


async def sign_in_page(request: Request) -> Response:
    """The sign-in form (or the overview, when already signed in)."""
    if await _session(request) is not None:
        return redirect(PREFIX)
    return _sign_in_form(request)


async def sign_in(request: Request) -> Response:
    """Check the key of the form; open a session, or say why not (without echoing it)."""
    runtime = runtime_of(request)
    try:
        form = await read_form(request)
    except FormError as exc:
        return _sign_in_form(request, 400, str(exc))
    if not from_our_origin(request) or not same_token(
        request.cookies.get(SIGN_IN_COOKIE), form.get("csrf")
    ):
        return _sign_in_form(request, 403, "This sign-in did not come from this page; try again.")
    address = request.client.host if request.client else "unknown"
    wait = runtime.auth_failures.peek(address)
    if wait > 0:
        seconds = retry_after_seconds(wait)
        response = _sign_in_form(
            request, 429, f"Too many failed sign-ins; try again in {seconds} s."
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    try:
        record = await run_in_threadpool(
            runtime.verifier.verify, f"Bearer {form.get('key', '').strip()}"
        )
    except ApiError:
        runtime.auth_failures.acquire(address)
        return _sign_in_form(
            request, 401, "That key was not accepted: it is unknown, revoked or mistyped."
        )
    token = await run_in_threadpool(SessionStore(runtime.storage).open, record)
    response = redirect(PREFIX)
    _set_cookie(request, response, SESSION_COOKIE, token, SessionStore.lifetime_seconds)
    _set_cookie(request, response, SIGN_IN_COOKIE, "", 0)
    return response


async def sign_out(request: Request) -> Response:
    """End the session (a POST from our own page only) and go back to the sign-in form."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return render("refused.html", 400, reason=str(exc), prefix=PREFIX)
    session = await _session(request)
    expected = None if session is None else csrf_token_for(session[1])
    # Without a session there is nothing to end: only the origin is checked then.
    if not from_our_origin(request) or (session and not same_token(expected, form.get("csrf"))):
        return render(
            "refused.html", 403, reason="This sign-out did not come from this site.", prefix=PREFIX
        )
    await run_in_threadpool(
        SessionStore(runtime_of(request).storage).end, request.cookies.get(SESSION_COOKIE)
    )
    response = redirect(_SIGN_IN)
    _set_cookie(request, response, SESSION_COOKIE, "", 0)
    return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard under `/dashboard` (pages, forms and its static files)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    router.add_api_route("", _signed_in(overview.page), methods=["GET"])
    router.add_api_route("/explorer", _signed_in(explorer.page), methods=["GET"])
    router.add_api_route("/budgets", _signed_in(budgets.page), methods=["GET"])
    router.add_api_route("/sign-in", sign_in_page, methods=["GET"])
    router.add_api_route("/sign-in", sign_in, methods=["POST"])
    router.add_api_route("/sign-out", sign_out, methods=["POST"])
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_STATIC), name="dashboard-static")
