"""HTTP for the SDK: the two executors that perform a plan's actions, and request encoding.

The decisions live in plans (`_plans`, `_delivery`, `_predictions`) and the retry rule in
`_retry`; the thread drives a plan with `SyncExchange` (httpx.Client, threading.Event waits), the
asyncio task with `AsyncExchange` (httpx.AsyncClient, asyncio waits): only the I/O and the waiting
differ. This is the one SDK module that imports httpx at import time, and it is itself imported
only when a submitter, a flush or a refresh first needs it (import cost matters to short-lived
hook processes).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

# httpx imports httpcore lazily on first use; done here, in the caller's thread, because a fork
# during an import in the worker would leave the child a half-imported module.
import httpcore  # noqa: F401
import httpx

from mosaicstack_telemetry._logs import redact
from mosaicstack_telemetry._plans import Check, Disk, Plan, Send
from mosaicstack_telemetry._redirects import MAX_REDIRECTS, headers_for, redirect_target
from mosaicstack_telemetry._reply import Reply
from mosaicstack_telemetry._settings import Settings

__all__ = [
    "AsyncExchange",
    "SyncExchange",
    "Transport",
    "async_client",
    "encode_request",
    "sync_client",
]

# Below this, gzip costs more CPU than it saves bytes.
GZIP_MIN_BYTES = 1024
# Our answers are small (one line per event or query); anything bigger is not our server.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

T = TypeVar("T")

# An httpx transport to use instead of the network (`mosaicstack_telemetry.testing`), or None.
Transport = httpx.BaseTransport | httpx.AsyncBaseTransport | None


def sync_client(transport: Transport) -> httpx.Client:
    """The httpx client of a thread: over `transport` when it can serve one, else the network."""
    if isinstance(transport, httpx.BaseTransport):
        return httpx.Client(transport=transport)
    return httpx.Client()


def async_client(transport: Transport) -> httpx.AsyncClient:
    """The httpx client of an asyncio task, like `sync_client`."""
    if isinstance(transport, httpx.AsyncBaseTransport):
        return httpx.AsyncClient(transport=transport)
    return httpx.AsyncClient()


def encode_request(body: bytes, settings: Settings) -> tuple[bytes, dict[str, str]]:
    """Headers of every SDK request, and the body gzipped when that is worth it."""
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "User-Agent": settings.user_agent,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    if len(body) > GZIP_MIN_BYTES:
        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return body, headers


_TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def _failure(exc: BaseException, settings: Settings) -> Reply:
    if isinstance(exc, _TRANSIENT_ERRORS):
        # Socket-level messages carry no request data, so they are safe and useful to show.
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Reply(None, error=redact(text, settings.api_key))
    # Other errors may quote the request (a header value with the key in it): name the type only.
    return Reply(None, error=f"request failed ({type(exc).__name__})", permanent=True)


def _read_capped(chunks: Iterator[bytes]) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            break
    return bytes(body[:MAX_RESPONSE_BYTES])


async def _aread_capped(chunks: AsyncIterator[bytes]) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            break
    return bytes(body[:MAX_RESPONSE_BYTES])


class _Exchange:
    """What both executors share: the deadline arithmetic and the request's parts."""

    def __init__(self, settings: Settings, deadline: float | None) -> None:
        self.settings = settings
        # Set from another thread by stop(): the work in progress then gets the stop's deadline.
        self.deadline = deadline

    def _interrupted(self) -> bool:
        raise NotImplementedError  # pragma: no cover - both executors define it

    def _may_proceed(self) -> bool:
        deadline = self.deadline
        return not self._interrupted() and (deadline is None or time.monotonic() < deadline)

    def _timeout(self) -> float:
        timeout = self.settings.request_timeout_seconds
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        return timeout

    def _fits(self, seconds: float) -> bool:
        return self.deadline is None or time.monotonic() + seconds <= self.deadline

    def _request(self, action: Send) -> tuple[str, bytes, dict[str, str]]:
        content, headers = encode_request(action.body, self.settings)
        return self.settings.server_url + action.path, content, headers


class SyncExchange(_Exchange):
    """Drives plans in a thread: httpx.Client for sends, `interrupt.wait` for waits."""

    def __init__(
        self,
        http: httpx.Client,
        settings: Settings,
        *,
        interrupt: threading.Event | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__(settings, deadline)
        self._http = http
        # Never set when absent: waits then run their full length (bounded by the deadline).
        self._interrupt = interrupt or threading.Event()

    def run(self, plan: Plan[T]) -> T:
        """Run `plan` to completion and return its result."""
        result: object = None
        while True:
            try:
                action = plan.send(result)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            if isinstance(action, Send):
                result = self._send(action)
            elif isinstance(action, Check):
                result = self._may_proceed()
            elif isinstance(action, Disk):
                result = action.work()
            else:
                result = self._fits(action.seconds) and not self._interrupt.wait(action.seconds)

    def _interrupted(self) -> bool:
        return self._interrupt.is_set()

    def _send(self, action: Send) -> Reply:
        timeout = self._timeout()
        if timeout <= 0:
            return Reply(None, error="shutdown deadline reached")
        try:
            origin, content, headers = self._request(action)
            url = origin
            for hop in range(MAX_REDIRECTS + 1):
                with self._http.stream(
                    action.method, url, content=content, headers=headers, timeout=timeout
                ) as response:
                    target = redirect_target(url, response.status_code, response.headers)
                    if target is None or hop == MAX_REDIRECTS:
                        body = _read_capped(response.iter_bytes())
                        return Reply(response.status_code, response.headers, body)
                url, headers = target, headers_for(origin, target, headers)
                timeout = self._timeout()
                if timeout <= 0:
                    break
            return Reply(None, error="shutdown deadline reached")
        except Exception as exc:  # every failure becomes a Reply the plan judges
            return _failure(exc, self.settings)


class AsyncExchange(_Exchange):
    """Drives plans in an asyncio task: httpx.AsyncClient for sends, asyncio waits."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        interrupt: asyncio.Event | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__(settings, deadline)
        self._http = http
        self._interrupt = interrupt

    async def run(self, plan: Plan[T]) -> T:
        """Run `plan` to completion and return its result."""
        result: object = None
        while True:
            try:
                action = plan.send(result)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            if isinstance(action, Send):
                result = await self._send(action)
            elif isinstance(action, Check):
                result = self._may_proceed()
            elif isinstance(action, Disk):
                result = action.work() if action.inline else await asyncio.to_thread(action.work)
            else:
                result = self._fits(action.seconds) and await self._wait(action.seconds)

    def _interrupted(self) -> bool:
        return self._interrupt is not None and self._interrupt.is_set()

    async def _wait(self, seconds: float) -> bool:
        if self._interrupt is None:
            await asyncio.sleep(seconds)
            return True
        try:
            await asyncio.wait_for(self._interrupt.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _send(self, action: Send) -> Reply:
        timeout = self._timeout()
        if timeout <= 0:
            return Reply(None, error="shutdown deadline reached")
        try:
            # wait_for bounds the whole exchange, not just each socket operation.
            return await asyncio.wait_for(self._post(action, timeout), timeout)
        except Exception as exc:  # every failure becomes a Reply the plan judges
            if isinstance(exc, TimeoutError):
                return Reply(None, error=f"timed out after {timeout:.3g} s")
            return _failure(exc, self.settings)

    async def _post(self, action: Send, timeout: float) -> Reply:
        origin, content, headers = self._request(action)
        url = origin
        hop = 0
        while True:  # ends: at most MAX_REDIRECTS hops, and wait_for bounds the whole exchange
            async with self._http.stream(
                action.method, url, content=content, headers=headers, timeout=timeout
            ) as response:
                target = redirect_target(url, response.status_code, response.headers)
                if target is None or hop == MAX_REDIRECTS:
                    body = await _aread_capped(response.aiter_bytes())
                    return Reply(response.status_code, response.headers, body)
            url, headers = target, headers_for(origin, target, headers)
            hop += 1
