"""The dashboard over HTTP: sign-in and sign-out, sessions, CSRF, rate limits, isolation."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from _api_helpers import Served, serve, wait_until
from _dashboard_helpers import SIGN_IN, SIGN_OUT, browser, csrf_of, seed, sign_in, total

from mosaicstack_telemetry_server.access_log import ACCESS_LOGGER
from mosaicstack_telemetry_server.auth import KEY_CACHE_SECONDS, issue_api_key
from mosaicstack_telemetry_server.dashboard.csrf import SIGN_IN_COOKIE
from mosaicstack_telemetry_server.dashboard.formatting import (
    format_count,
    format_percent,
    format_usd,
)
from mosaicstack_telemetry_server.dashboard.forms import MAX_FORM_BYTES
from mosaicstack_telemetry_server.dashboard.sessions import SESSION_COOKIE


@pytest.fixture
def client(sqlite_server: Served) -> Iterator[httpx.Client]:
    with browser(sqlite_server.url) as client:
        yield client


def _origin(served: Served) -> dict[str, str]:
    return {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}


def test_pages_need_a_session_and_send_to_the_sign_in_form(client: httpx.Client) -> None:
    for path in ("/dashboard", "/dashboard/explorer"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == SIGN_IN


def test_sign_in_sets_a_strict_httponly_session_cookie(
    sqlite_server: Served, client: httpx.Client
) -> None:
    response = sign_in(client, sqlite_server.key)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never come back
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert sqlite_server.key_id in page.text
    assert sqlite_server.key not in page.text


def test_a_signed_in_visit_to_the_form_goes_to_the_overview(
    sqlite_server: Served, client: httpx.Client
) -> None:
    sign_in(client, sqlite_server.key)
    assert client.get(SIGN_IN).headers["location"] == "/dashboard"


def test_pages_carry_a_strict_content_security_policy(
    sqlite_server: Served, client: httpx.Client
) -> None:
    sign_in(client, sqlite_server.key)
    for path in (SIGN_IN, "/dashboard", "/dashboard/explorer"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"


def test_a_wrong_key_is_refused_without_being_echoed(
    sqlite_server: Served, client: httpx.Client
) -> None:
    wrong = "ab" * 32
    for key in (wrong, "not a key", ""):
        response = sign_in(client, key)
        assert response.status_code == 401
        assert "was not accepted" in response.text
        if key:
            assert key not in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/dashboard").status_code == 303


def test_a_revoked_key_cannot_sign_in_and_its_sessions_end(sqlite_server: Served) -> None:
    key, key_id = sqlite_server.issue()
    with browser(sqlite_server.url) as client:
        sign_in(client, key)
        assert client.get("/dashboard").status_code == 200
        assert sqlite_server.storage.revoke_api_key(key_id)
        assert client.get("/dashboard").status_code == 303

    def refused() -> bool:  # within the verifier's cache time, as for the API
        with browser(sqlite_server.url) as client:
            return sign_in(client, key).status_code == 401

    wait_until(refused, timeout=KEY_CACHE_SECONDS + 5, what="the revoked key to be refused")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "null"},
    ],
)
def test_a_cross_site_sign_in_is_refused(
    sqlite_server: Served, client: httpx.Client, headers: dict[str, str]
) -> None:
    token = csrf_of(client.get(SIGN_IN))
    response = client.post(SIGN_IN, data={"csrf": token, "key": sqlite_server.key}, headers=headers)
    assert response.status_code == 403
    assert client.get("/dashboard").status_code == 303


def test_a_sign_in_without_the_forms_token_is_refused(
    sqlite_server: Served, client: httpx.Client
) -> None:
    token = csrf_of(client.get(SIGN_IN))
    for data in ({"key": sqlite_server.key}, {"key": sqlite_server.key, "csrf": "0" * 64}):
        assert client.post(SIGN_IN, data=data, headers=_origin(sqlite_server)).status_code == 403
    # The right token without its cookie (another browser) is refused too: login CSRF.
    with browser(sqlite_server.url) as other:
        data = {"csrf": token, "key": sqlite_server.key}
        assert other.post(SIGN_IN, data=data, headers=_origin(sqlite_server)).status_code == 403


def test_bodies_that_are_not_small_forms_are_refused(
    sqlite_server: Served, client: httpx.Client
) -> None:
    big = client.post(SIGN_IN, data={"key": "a" * MAX_FORM_BYTES}, headers=_origin(sqlite_server))
    assert big.status_code == 400
    assert "at most" in big.text
    as_json = client.post(SIGN_IN, json={"key": sqlite_server.key})
    assert as_json.status_code == 400
    assert client.post(SIGN_OUT, json={}).status_code == 400


def test_failed_sign_ins_are_rate_limited_per_address(tmp_path: object, sqlite_url: str) -> None:
    with serve(sqlite_url, auth_failure_rate_per_second=0.01, auth_failure_burst=3) as served:
        with browser(served.url) as client:
            statuses = [sign_in(client, "ab" * 32).status_code for _ in range(4)]
            assert statuses == [401, 401, 401, 429]
            limited = sign_in(client, served.key)  # even the right key waits its turn
            assert limited.status_code == 429
            assert int(limited.headers["retry-after"]) >= 1
        # Failed API authentications and failed sign-ins share the address's bucket.
        bad_key = {"Authorization": "Bearer " + "cd" * 32}
        api = httpx.post(served.url + "/v1/predictions/batch", json={}, headers=bad_key)
        assert api.status_code == 429


def test_sign_out_ends_the_session_everywhere(sqlite_server: Served, client: httpx.Client) -> None:
    sign_in(client, sqlite_server.key)
    stolen = client.cookies[SESSION_COOKIE]
    token = csrf_of(client.get("/dashboard"))
    response = client.post(SIGN_OUT, data={"csrf": token}, headers=_origin(sqlite_server))
    assert response.status_code == 303
    assert response.headers["location"] == SIGN_IN
    assert client.get("/dashboard").status_code == 303
    with browser(sqlite_server.url) as replay:
        replay.cookies.set(SESSION_COOKIE, stolen)
        assert replay.get("/dashboard").status_code == 303


def test_a_cross_site_sign_out_is_refused(sqlite_server: Served, client: httpx.Client) -> None:
    sign_in(client, sqlite_server.key)
    token = csrf_of(client.get("/dashboard"))
    cross = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert client.post(SIGN_OUT, data={"csrf": token}, headers=cross).status_code == 403
    empty = {"csrf": ""}
    assert client.post(SIGN_OUT, data=empty, headers=_origin(sqlite_server)).status_code == 403
    assert client.get("/dashboard").status_code == 200


def test_signing_out_without_a_session_just_shows_the_form(
    sqlite_server: Served, client: httpx.Client
) -> None:
    response = client.post(SIGN_OUT, data={"csrf": ""}, headers=_origin(sqlite_server))
    assert response.status_code == 303
    assert response.headers["location"] == SIGN_IN


def test_a_forged_or_garbled_session_cookie_is_no_session(
    sqlite_server: Served, client: httpx.Client
) -> None:
    for value in ("0" * 64, "zz", "g" * 64, ""):
        client.cookies.set(SESSION_COOKIE, value)
        assert client.get("/dashboard").status_code == 303
    client.cookies.clear()
    # Non-ASCII letters pass isalnum(): the ASCII hash must never see them (it raised: a 500).
    garbled = f"{SESSION_COOKIE}=".encode() + "é".encode("latin-1") * 64
    assert client.get("/dashboard", headers={"Cookie": garbled}).status_code == 303


def test_the_key_never_reaches_the_log(
    sqlite_server: Served, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        sign_in(client, sqlite_server.key)
        client.get("/dashboard")
        with browser(sqlite_server.url) as other:
            sign_in(other, "ab" * 32)
    assert any(r.name == ACCESS_LOGGER for r in caplog.records)
    assert sqlite_server.key not in caplog.text
    assert "ab" * 32 not in caplog.text


def test_totals_are_the_instances_own_events_only(sqlite_server: Served) -> None:
    other = uuid.uuid4()
    events = seed(sqlite_server.storage, [sqlite_server.instance_id, other], 300)
    mine = [e for e in events if e.instance_id == sqlite_server.instance_id]
    with browser(sqlite_server.url) as client:
        sign_in(client, sqlite_server.key)
        # Asking for another instance changes nothing for an instance key.
        page = client.get("/dashboard", params={"days": 30, "instance": str(other)})
    assert page.status_code == 200
    assert total(page, "tasks") == format_count(len(mine))
    assert total(page, "cost_usd_micros") == format_usd(sum(e.actual_cost_usd_micros for e in mine))
    assert total(page, "input_tokens") == format_count(sum(e.actual_input_tokens for e in mine))
    assert str(other) not in page.text


def test_the_range_selects_whole_utc_days(sqlite_server: Served) -> None:
    events = seed(sqlite_server.storage, [sqlite_server.instance_id], 200)
    day = datetime.now(UTC).date() - timedelta(days=3)
    on_day = [e for e in events if e.timestamp.astimezone(UTC).date() == day]
    with browser(sqlite_server.url) as client:
        sign_in(client, sqlite_server.key)
        page = client.get("/dashboard", params={"from": day.isoformat(), "to": day.isoformat()})
    assert total(page, "tasks") == format_count(len(on_day))
    assert f'value="{day.isoformat()}"' in page.text


def test_a_range_that_cannot_be_shown_says_why(sqlite_server: Served, client: httpx.Client) -> None:
    sign_in(client, sqlite_server.key)
    for params, message in (
        ({"from": "2026-02-30"}, "YYYY-MM-DD"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "must not be after"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
        ({"days": "0"}, "whole number"),
        ({"days": "²"}, "whole number"),  # a digit to isdigit(), not to int()
        ({"from": "9999-12-31"}, "dates must be from"),  # its next day overflows
        ({"from": "0001-01-01", "to": "0001-01-02"}, "dates must be from"),
    ):
        page = client.get("/dashboard", params=params)
        assert page.status_code == 200
        assert message in page.text


def test_the_presets_are_links_one_click_away(sqlite_server: Served, client: httpx.Client) -> None:
    sign_in(client, sqlite_server.key)
    page = client.get("/dashboard", params={"days": 7})
    for days in (7, 30, 90):
        assert f'href="?days={days}"' in page.text
    assert 'aria-current="true" data-days="7"' in page.text


def test_the_explorer_shows_the_apis_prediction(sqlite_server: Served) -> None:
    seed(sqlite_server.storage, [sqlite_server.instance_id], 300)
    query = {
        "task_type": "implementation",
        "model": "claude-sonnet-4",
        "provider": "openrouter",
        "complexity": "critical",
    }
    api = sqlite_server.client().post("/v1/predictions/batch", json={"queries": [query]})
    expected = api.json()["results"][0]["metadata"]
    with browser(sqlite_server.url) as client:
        sign_in(client, sqlite_server.key)
        page = client.get("/dashboard/explorer", params=query)
    assert page.status_code == 200
    assert f'<dd id="fallback-level">{expected["fallback_level"]}</dd>' in page.text
    assert f'<dd id="confidence">{expected["confidence"]}</dd>' in page.text


def test_the_explorer_says_what_is_wrong_with_a_query(
    sqlite_server: Served, client: httpx.Client
) -> None:
    sign_in(client, sqlite_server.key)
    page = client.get("/dashboard/explorer", params={"task_type": "juggling", "model": "m"})
    assert page.status_code == 422
    assert "task_type" in page.text
    assert 'id="prediction"' not in page.text
    assert client.get("/dashboard/explorer").status_code == 200  # the empty form


def test_the_stylesheet_ships_in_the_package(client: httpx.Client) -> None:
    response = client.get("/dashboard/static/dashboard.css")
    assert response.status_code == 200
    assert "http" not in response.text  # nothing fetched from elsewhere


def test_an_admin_sees_every_instance_and_can_narrow_to_one(sqlite_server: Served) -> None:
    other = uuid.uuid4()
    events = seed(sqlite_server.storage, [sqlite_server.instance_id, other], 300)
    admin, _ = issue_api_key(sqlite_server.storage, None, "admin", admin=True)
    issue_api_key(sqlite_server.storage, other, "other")  # its events came with its key
    theirs = [e for e in events if e.instance_id == other]
    with browser(sqlite_server.url) as client:
        sign_in(client, admin)
        everything = client.get("/dashboard", params={"days": 30})
        narrowed = client.get("/dashboard", params={"days": 30, "instance": str(other)})
        garbled = client.get("/dashboard", params={"instance": "not-a-uuid"})
    assert total(everything, "tasks") == format_count(len(events))
    assert "all instances" in everything.text
    for instance in (sqlite_server.instance_id, other):
        assert f'<option value="{instance}"' in everything.text  # the instance filter
    assert total(narrowed, "tasks") == format_count(len(theirs))
    assert f'href="?days=7&amp;instance={other}"' in narrowed.text  # presets keep the filter
    assert "must be an instance id" in garbled.text
    assert total(garbled, "tasks") == format_count(len(events))


@pytest.mark.parametrize("as_admin", [False, True])
def test_the_totals_shown_are_those_of_the_usage_api(sqlite_server: Served, as_admin: bool) -> None:
    seed(sqlite_server.storage, [sqlite_server.instance_id, uuid.uuid4()], 300)
    key = sqlite_server.key
    if as_admin:
        key, _ = issue_api_key(sqlite_server.storage, None, "admin", admin=True)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=6)
    end = today + timedelta(days=1)
    api = sqlite_server.client(key).get("/v1/usage", params={"from": first, "to": end})
    totals = api.json()["totals"]
    with browser(sqlite_server.url) as client:
        sign_in(client, key)
        page = client.get("/dashboard", params={"days": 7})
    assert total(page, "tasks") == format_count(totals["tasks"])
    assert total(page, "cost_usd_micros") == format_usd(totals["cost_usd_micros"])
    assert total(page, "output_tokens") == format_count(totals["output_tokens"])
    assert total(page, "success_rate") == format_percent(totals["success_rate"])


def test_behind_a_tls_proxy_the_cookie_is_secure_and_the_https_origin_ours(
    sqlite_server: Served, client: httpx.Client
) -> None:
    proxied = {"X-Forwarded-Proto": "https"}
    form = client.get(SIGN_IN, headers=proxied)
    assert "Secure" in form.headers["set-cookie"]
    token = csrf_of(form)
    host = sqlite_server.url.removeprefix("http://")
    # The browser, on https, sends back the Secure cookie that httpx keeps off plain HTTP.
    headers = {
        **proxied,
        "Origin": f"https://{host}",
        "Sec-Fetch-Site": "same-origin",
        "Cookie": f"{SIGN_IN_COOKIE}={token}",
    }
    with browser(sqlite_server.url) as on_https:
        response = on_https.post(
            SIGN_IN, data={"csrf": token, "key": sqlite_server.key}, headers=headers
        )
    assert response.status_code == 303
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie
    # Without the proxy's word, an https origin is another origin.
    token = csrf_of(client.get(SIGN_IN))
    headers = {"Origin": f"https://{host}", "Sec-Fetch-Site": "same-origin"}
    response = client.post(SIGN_IN, data={"csrf": token, "key": sqlite_server.key}, headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("asked", "message"),
    [("p" * 201, "at most 200 characters"), ("a\x01b", "no control characters")],
)
def test_a_project_filter_that_cannot_be_one_is_told_and_every_project_shown(
    client: httpx.Client, sqlite_server: Served, asked: str, message: str
) -> None:
    assert sign_in(client, sqlite_server.key).status_code == 303
    for path in ("/dashboard", "/dashboard/explorer"):
        page = client.get(path, params={"project": asked})
        assert page.status_code in (200, 422)
        assert message in page.text
        assert 'href="/dashboard/explorer"' in page.text  # nothing carried
