"""`--trusted-proxy`: X-Forwarded-For decides the client address only when the peer is trusted.

The test client connects from 127.0.0.1, so a server trusting 127.0.0.1 sees it as a proxy and
one trusting 10.0.0.0/8 sees it as a client sending headers it has no business sending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _api_helpers import Served, serve, wait_until

from mosaicstack_telemetry_server.access_log import ACCESS_LOGGER
from mosaicstack_telemetry_server.cli import build_parser, main, settings_from_args
from mosaicstack_telemetry_server.proxies import MAX_TRUSTED_PROXIES, parse_trusted_proxies
from mosaicstack_telemetry_server.settings import ServerSettings

BATCH = "/v1/events/batch"
ATTACKER, VICTIM = "203.0.113.9", "198.51.100.7"
# Two failed authentications per address, then 429 for a long while.
STRICT = {"auth_failure_rate_per_second": 0.001, "auth_failure_burst": 2}


@pytest.fixture
def behind(sqlite_url: str, request: pytest.FixtureRequest) -> Iterator[Served]:
    """A server trusting the networks in the test's parameter."""
    with serve(sqlite_url, trusted_proxies=request.param, **STRICT) as served:
        yield served


def _bad_key(served: Served, forwarded_for: str) -> int:
    headers = {"Authorization": "Bearer " + "0" * 64, "X-Forwarded-For": forwarded_for}
    return httpx.post(served.url + BATCH, json={"events": []}, headers=headers).status_code


def _clients(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r.fields["client"] for r in caplog.records if r.name == ACCESS_LOGGER]  # type: ignore[attr-defined]


@pytest.mark.parametrize("behind", ["127.0.0.1/32,10.0.0.0/8"], indirect=True)
def test_a_trusted_proxy_gives_each_client_its_own_failure_bucket(
    behind: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        assert [_bad_key(behind, ATTACKER) for _ in range(3)] == [401, 401, 429]
        assert _bad_key(behind, VICTIM) == 401
        # The access line is written just after the response is sent.
        wait_until(lambda: len(_clients(caplog)) == 4, what="access lines")
    assert _clients(caplog) == [ATTACKER] * 3 + [VICTIM]


@pytest.mark.parametrize("behind", ["127.0.0.1"], indirect=True)
def test_a_client_cannot_forge_its_way_past_the_proxy(behind: Served) -> None:
    # The proxy appends the real peer: whatever the client wrote before it is ignored.
    for forged in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        _bad_key(behind, f"{forged}, {ATTACKER}")
    assert _bad_key(behind, f"192.0.2.4, {ATTACKER}") == 429
    assert _bad_key(behind, VICTIM) == 401


@pytest.mark.parametrize("behind", ["10.0.0.0/8", ""], indirect=True)
def test_headers_from_an_untrusted_peer_are_ignored(
    behind: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        assert [_bad_key(behind, ATTACKER) for _ in range(2)] == [401, 401]
        # Same TCP peer, so the same bucket, whatever the header claims.
        assert _bad_key(behind, VICTIM) == 429
        wait_until(lambda: len(_clients(caplog)) == 3, what="access lines")
    assert _clients(caplog) == ["127.0.0.1"] * 3


def test_trusted_proxies_are_validated_and_normalized() -> None:
    assert parse_trusted_proxies(" 10.0.0.7 , 10.1.0.0/16,::1,") == [
        "10.0.0.7/32",
        "10.1.0.0/16",
        "::1/128",
    ]
    assert parse_trusted_proxies("") == []
    with pytest.raises(ValueError, match=r"'proxy\.local' is not an IP address or CIDR"):
        parse_trusted_proxies("10.0.0.0/8,proxy.local")
    with pytest.raises(ValueError, match=f"at most {MAX_TRUSTED_PROXIES}"):
        parse_trusted_proxies(",".join(["10.0.0.1"] * (MAX_TRUSTED_PROXIES + 1)))
    with pytest.raises(ValueError, match="not an IP address"):
        ServerSettings(database_url="sqlite:///:memory:", trusted_proxies="x/33")


def test_trusted_proxy_flag_repeats_and_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_TRUSTED_PROXIES", "192.0.2.0/24")
    parser = build_parser()
    assert settings_from_args(parser.parse_args(["serve"])).trusted_proxies == "192.0.2.0/24"
    args = parser.parse_args(
        ["serve", "--trusted-proxy", "10.0.0.1", "--trusted-proxy", "fd00::/8"]
    )
    assert settings_from_args(args).trusted_proxies == "10.0.0.1/32,fd00::/8"
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--trusted-proxy", "10.0.0.300"])
    assert exited.value.code == 2
    assert "is not an IP address or CIDR network" in capsys.readouterr().err


def test_a_bad_trusted_proxy_variable_stops_serve_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_TRUSTED_PROXIES", "10.0.0.0/8,lb.internal")
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "MOSAIC_TELEMETRY_TRUSTED_PROXIES: trusted proxy 'lb.internal' is not an IP" in err
