"""Schemathesis drives the budget routes of the served OpenAPI document with an admin key:
no 5xx, no response outside the document, invalid budgets refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from _api_helpers import Served, serve
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from mosaicstack_telemetry_server.auth import issue_api_key

_EXAMPLES = 30


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """A server for the whole module (SQLite) and an admin key."""
    path = tmp_path_factory.mktemp("fuzz-budgets") / "telemetry.db"
    with serve(f"sqlite:///{path}") as served:
        key, _ = issue_api_key(served.storage, None, "fuzz", admin=True)
        yield served, key


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        ("PUT", "/v1/budgets/{name}", GenerationMode.POSITIVE),
        ("PUT", "/v1/budgets/{name}", GenerationMode.NEGATIVE),
        ("GET", "/v1/budgets", GenerationMode.POSITIVE),
        ("GET", "/v1/budgets/status", GenerationMode.POSITIVE),
        ("DELETE", "/v1/budgets/{name}", GenerationMode.POSITIVE),
    ],
)
def test_budget_routes_conform_to_the_document(
    admin_server: tuple[Served, str], method: str, path: str, mode: GenerationMode
) -> None:
    served, key = admin_server
    operation = schemathesis.openapi.from_url(served.url + "/openapi.json")[path][method]
    headers = {"Authorization": f"Bearer {key}"}
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def conforms(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=served.url, headers=headers)
        calls.append(response.status_code)

    conforms()
    assert all(status < 500 for status in calls), calls
    if mode is GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for status in calls), calls
