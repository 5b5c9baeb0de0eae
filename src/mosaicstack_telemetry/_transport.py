"""HTTP for the SDK: request encoding, response verdicts, retry timing, and the two executors.

Everything that decides (classify a reply, how long to wait, when to split or give up) is a plain
function or a generator "plan" that yields `Send`/`Wait` actions and receives their results. The
thread drives a plan with `SyncExchange` (httpx.Client, threading.Event waits), the asyncio task
with `AsyncExchange` (httpx.AsyncClient, asyncio waits): only the I/O and the waiting differ.
"""

from __future__ import annotations

import asyncio
import enum
import gzip
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpcore  # noqa: F401 - httpx imports it lazily; see ThreadSubmitter
import httpx

from mosaicstack_telemetry._logs import logger, redact
from mosaicstack_telemetry._redirects import (
    FOLLOWED_STATUSES,
    MAX_REDIRECTS,
    headers_for,
    redirect_target,
)
from mosaicstack_telemetry._settings import Settings

__all__ = [
    "AsyncExchange",
    "Check",
    "Plan",
    "Reply",
    "Send",
    "SyncExchange",
    "Verdict",
    "Wait",
    "classify",
    "describe_failure",
    "encode_request",
    "log_reply_failure",
    "may_proceed",
    "parse_retry_after",
    "retry_delay",
    "send",
    "wait",
]

EVENTS_PATH = "/v1/events/batch"
PREDICTIONS_PATH = "/v1/predictions/batch"
# Below this, gzip costs more CPU than it saves bytes.
GZIP_MIN_BYTES = 1024
# A server asking us to wait longer than this is more likely wrong than right.
MAX_RETRY_AFTER_SECONDS = 300.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# Our answers are small (one line per event or query); anything bigger is not our server.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Enough of a server's error body for a person to act on; logs are not the place for more.
_MAX_DETAIL_CHARS = 300

T = TypeVar("T")


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


class Verdict(enum.Enum):
    """What to do with a batch after a reply."""

    DONE = "done"
    DROP = "drop"
    SPLIT = "split"
    RETRY = "retry"


def classify(reply: Reply) -> Verdict:
    """The contract's response rules: 2xx done, 413 split, 408/429/5xx/network retry, else drop."""
    status = reply.status
    if status is None:
        return Verdict.DROP if reply.permanent else Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DONE
    if status == 413:
        return Verdict.SPLIT
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.DROP


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped."""
    if value is None:
        return None
    text = value.strip()[:64]
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(attempt: int, retry_after: float | None, random: Callable[[], float]) -> float:
    """Exponential backoff with full jitter for retry `attempt` (0-based), >= `retry_after`."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(attempt, 32))
    delay = min(max(random(), 0.0), 1.0) * ceiling
    return delay if retry_after is None else max(delay, retry_after)


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


# --- plans: generators of actions --------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Action: POST `body` (JSON) to `path` under the server URL; the result is a `Reply`."""

    path: str
    body: bytes


@dataclass(frozen=True)
class Wait:
    """Action: wait `seconds`; the result is False when stop or the deadline cut it short."""

    seconds: float


@dataclass(frozen=True)
class Check:
    """Action: may the plan start more work? False once stop was asked or the deadline passed."""


Plan = Generator[Send | Wait | Check, object, T]


def send(path: str, body: bytes) -> Plan[Reply]:
    """Sub-plan: send one request and return its reply."""
    reply = yield Send(path, body)
    if not isinstance(reply, Reply):  # pragma: no cover - an executor bug, not a runtime case
        raise TypeError(f"expected a Reply, got {type(reply).__name__}")
    return reply


def may_proceed() -> Plan[bool]:
    """Sub-plan: whether there is still time (and no stop request) for another request."""
    ok = yield Check()
    return bool(ok)


def wait(seconds: float) -> Plan[bool]:
    """Sub-plan: wait, returning whether the whole wait elapsed."""
    done = yield Wait(seconds)
    return bool(done)


# --- executors ---------------------------------------------------------------------------------

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
                    "POST", url, content=content, headers=headers, timeout=timeout
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
                "POST", url, content=content, headers=headers, timeout=timeout
            ) as response:
                target = redirect_target(url, response.status_code, response.headers)
                if target is None or hop == MAX_REDIRECTS:
                    body = await _aread_capped(response.aiter_bytes())
                    return Reply(response.status_code, response.headers, body)
            url, headers = target, headers_for(origin, target, headers)
            hop += 1


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
