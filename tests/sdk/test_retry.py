"""The retry rule and the I/O-free rules both submitters share: verdicts, Retry-After, backoff.

These pin the private helpers directly because they are the single source of the contract's
client rules; the wire tests show the same rules end to end.
"""

from __future__ import annotations

import dataclasses
import gzip
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaicstack_telemetry import TelemetryClient
from mosaicstack_telemetry._plans import send
from mosaicstack_telemetry._reply import Reply
from mosaicstack_telemetry._retry import (
    BACKOFF_MAX_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    RECOVERY_EVICTING_MAX_SECONDS,
    RECOVERY_MAX_SECONDS,
    Verdict,
    classify,
    parse_retry_after,
    recovery_delay,
    retry_delay,
)
from mosaicstack_telemetry._schedule import Schedule
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._transport import MAX_RESPONSE_BYTES, SyncExchange, encode_request

from .conftest import API_KEY, make_config, make_event

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DONE),
        (207, Verdict.DONE),
        (413, Verdict.SPLIT),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (599, Verdict.RETRY),
        (400, Verdict.DROP),
        (401, Verdict.DROP),
        (403, Verdict.DROP),
        (404, Verdict.DROP),
        (415, Verdict.DROP),
        (422, Verdict.DROP),
        (301, Verdict.DROP),
    ],
)
def test_status_verdicts_follow_the_contract(status: int, verdict: Verdict) -> None:
    assert classify(Reply(status)) is verdict


def test_network_errors_retry_but_unusable_requests_drop() -> None:
    assert classify(Reply(None, error="ConnectError")) is Verdict.RETRY
    assert classify(Reply(None, error="bad url", permanent=True)) is Verdict.DROP


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("0", 0.0),
        ("7", 7.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("86400", MAX_RETRY_AFTER_SECONDS),
        ("inf", MAX_RETRY_AFTER_SECONDS),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Sun, 01 Mar 2026 12:00:10", 10.0),  # no zone: taken as UTC
    ],
)
def test_retry_after_reads_seconds_and_http_dates_with_a_cap(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


@given(
    attempt=st.integers(min_value=0, max_value=1000),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=MAX_RETRY_AFTER_SECONDS),
)
def test_backoff_is_full_jitter_under_an_exponential_cap(
    attempt: int, jitter: float, retry_after: float | None
) -> None:
    delay = retry_delay(attempt, retry_after, lambda: jitter)
    ceiling = min(BACKOFF_MAX_SECONDS, 2.0**attempt)
    assert delay >= (retry_after or 0.0)
    assert delay <= max(ceiling, retry_after or 0.0)
    if retry_after is None:
        assert delay == pytest.approx(jitter * ceiling)


def test_backoff_grows_exponentially_at_full_jitter() -> None:
    assert [retry_delay(a, None, lambda: 1.0) for a in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_requests_carry_auth_agent_and_json_type_and_gzip_above_1_kib() -> None:
    settings = Settings.from_config(make_config("http://x", user_agent="ua/1"))
    small, headers = encode_request(b"{}", settings)
    assert small == b"{}"
    assert headers == {
        "Authorization": f"Bearer {API_KEY}",
        "User-Agent": "ua/1",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    body = b'{"events": [' + b"1," * 1000 + b"1]}"
    packed, headers = encode_request(body, settings)
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed) == body


def test_oversized_responses_are_cut_at_the_limit() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (MAX_RESPONSE_BYTES + 10))

    settings = Settings.from_config(make_config("http://telemetry.test"))
    with httpx.Client(transport=httpx.MockTransport(huge)) as http:
        reply = SyncExchange(http, settings).run(send("/v1/events/batch", b"{}"))
    assert reply.status == 200
    assert len(reply.body) == MAX_RESPONSE_BYTES


def test_a_200_with_an_unreadable_body_counts_as_delivered() -> None:
    # A proxy answering 200 with HTML: the batch is done, never resent in a loop.
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>ok</html>")

    from mosaicstack_telemetry._delivery import deliver

    settings = Settings.from_config(make_config("http://telemetry.test"))
    with httpx.Client(transport=httpx.MockTransport(html)) as http:
        delivery = SyncExchange(http, settings).run(deliver([make_event()], settings))
    assert delivery.unsent == []


def test_unreadable_207_is_logged_as_partly_rejected(caplog: pytest.LogCaptureFixture) -> None:
    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(207, content=b"garbled")

    from mosaicstack_telemetry._delivery import deliver

    settings = Settings.from_config(make_config("http://telemetry.test"))
    with httpx.Client(transport=httpx.MockTransport(garbled)) as http:
        delivery = SyncExchange(http, settings).run(deliver([make_event()], settings))
    assert delivery.unsent == []
    assert "partly rejected" in caplog.text


def test_settings_repr_hides_the_key() -> None:
    settings = Settings.from_config(make_config("http://x"))
    assert API_KEY not in repr(settings)
    assert API_KEY not in repr(TelemetryClient(make_config("http://x")))


@pytest.mark.parametrize(
    ("origin", "target", "keeps_key"),
    [
        ("http://t.example/v1", "http://t.example/v2", True),
        ("http://t.example/v1", "https://t.example/v1", True),  # the upgrade httpx allows too
        ("http://t.example:8080/v1", "https://t.example/v1", False),
        ("https://t.example/v1", "https://t.example:8443/v1", False),
        ("https://t.example/v1", "https://evil.example/v1", False),
    ],
)
def test_redirected_requests_carry_the_key_only_to_the_same_origin(
    origin: str, target: str, keeps_key: bool
) -> None:
    from mosaicstack_telemetry._redirects import headers_for

    headers = headers_for(origin, target, {"Authorization": "Bearer k", "User-Agent": "u"})
    assert ("Authorization" in headers) is keeps_key
    assert headers["User-Agent"] == "u"


def test_an_https_server_is_never_followed_down_to_http() -> None:
    from mosaicstack_telemetry._redirects import redirect_target

    assert redirect_target("https://t.example/v1", 308, {"location": "http://t.example/v1"}) is None
    assert redirect_target("http://t.example/v1", 308, {"location": "https://t.example/v1"}) == (
        "https://t.example/v1"
    )
    assert redirect_target("http://t.example/v1", 308, {}) is None
    assert redirect_target("http://t.example/v1", 301, {"location": "/x"}) is None


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0.0, max_value=1.0))
def test_recovery_delay_starts_short_never_zero_and_is_capped_near_30_s(
    failures: int, jitter: float
) -> None:
    delay = recovery_delay(failures, lambda: jitter)
    assert 0.5 <= delay <= RECOVERY_MAX_SECONDS
    if failures == 1:
        assert delay <= 1.0  # a blip costs about a second
    if failures >= 10:
        assert delay >= RECOVERY_MAX_SECONDS / 2  # a long outage: one attempt per ~15-30 s


def test_recovery_delay_doubles_with_each_failure() -> None:
    ceilings = [recovery_delay(n, lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@given(st.floats(min_value=0.0, max_value=300.0), st.integers(min_value=1, max_value=12))
def test_a_failed_flush_waits_at_least_what_the_server_asked_for(
    asked: float, failures: int
) -> None:
    settings = Settings.from_config(make_config("http://telemetry.test"))
    clock = _Clock()
    schedule = Schedule(settings, clock=clock)
    for _ in range(failures - 1):
        schedule.record(False)
    schedule.record(False, retry_after=asked)
    # Up to the clock's float rounding (due times are absolute, timeouts differences).
    assert schedule.timeout() >= asked - 1e-9
    assert schedule.timeout() <= max(asked, RECOVERY_MAX_SECONDS) + 1e-9
    clock.now += schedule.timeout()
    assert schedule.may_flush(requested=False)
    schedule.record(True)  # a success returns to the interval, whatever was asked before
    assert schedule.timeout() == pytest.approx(settings.submit_interval_seconds)


@given(
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.0, max_value=1.0),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=300.0)),
)
def test_while_the_queue_evicts_the_next_try_comes_within_seconds_yet_after_retry_after(
    failures: int, jitter: float, asked: float | None
) -> None:
    settings = Settings.from_config(make_config("http://telemetry.test"))
    settings = dataclasses.replace(settings, random=lambda: jitter)
    clock = _Clock()
    schedule = Schedule(settings, clock=clock)
    for _ in range(failures - 1):
        schedule.record(False)
    schedule.record(False, retry_after=asked)
    calm = recovery_delay(failures, lambda: jitter)
    # Nothing evicted: the normal pace, up to the 30 s cap.
    assert schedule.timeout() == pytest.approx(max(calm, asked or 0.0))
    evicting = schedule.timeout(evicting=True)
    assert evicting <= max(RECOVERY_EVICTING_MAX_SECONDS, asked or 0.0) + 1e-9
    assert evicting >= (asked or 0.0) - 1e-9
    assert evicting >= min(calm, RECOVERY_EVICTING_MAX_SECONDS / 2) - 1e-9  # never a busy loop
    clock.now += evicting
    assert schedule.may_flush(requested=False, evicting=True)


def test_at_the_30_s_cap_an_evicting_queue_is_retried_within_2_s() -> None:
    settings = Settings.from_config(make_config("http://telemetry.test"))
    clock = _Clock()
    schedule = Schedule(settings, clock=clock)
    for _ in range(10):
        schedule.record(False)
    assert schedule.timeout() >= RECOVERY_MAX_SECONDS / 2
    assert RECOVERY_EVICTING_MAX_SECONDS / 2 <= schedule.timeout(evicting=True) <= 2.0
    clock.now += 2.0
    assert schedule.may_flush(requested=True, evicting=True)
    assert not schedule.may_flush(requested=True)  # backing off: a request alone is not enough
