"""Schemathesis drives the served OpenAPI document: no 5xx, no response outside the document.

Every operation gets a bounded number of generated requests, valid and invalid, sent with a
valid API key over real HTTP to a real server. (Schemathesis's pytest plugin does not run under
the pytest in use, so its strategies are driven with hypothesis directly.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from _api_helpers import Served, serve
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

# Every check applies, negative_data_rejection included: the document says an entry of
# `events` may be anything (judged one by one, 207), so the only invalid requests
# schemathesis can make are ones the server refuses as a whole.
_EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server for the whole module (SQLite), its limits relaxed as in every API test."""
    path = tmp_path_factory.mktemp("fuzz") / "telemetry.db"
    with serve(f"sqlite:///{path}") as served:
        yield served


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: Served) -> schemathesis.BaseSchema:
    """The document the server serves, as schemathesis loads it."""
    return schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        ("POST", "/v1/events/batch", GenerationMode.POSITIVE),
        ("POST", "/v1/events/batch", GenerationMode.NEGATIVE),
        ("POST", "/v1/predictions/batch", GenerationMode.POSITIVE),
        ("POST", "/v1/predictions/batch", GenerationMode.NEGATIVE),
        ("GET", "/v1/health", GenerationMode.POSITIVE),  # no input to make invalid
    ],
)
def test_api_conforms_to_its_openapi_document(
    api_schema: schemathesis.BaseSchema,
    fuzzed_server: Served,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {fuzzed_server.key}"}
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def conforms(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=fuzzed_server.url, headers=headers)
        calls.append(response.status_code)

    conforms()
    # The key works (valid requests get through) and invalid ones are refused, not served.
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in calls), calls
    else:
        assert any(400 <= status < 500 for status in calls), calls
