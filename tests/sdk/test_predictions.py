"""Predictions: refresh over POST /v1/predictions/batch into the TTL cache, sync and async."""

from __future__ import annotations

import pytest

from mosaicstack_telemetry import (
    Complexity,
    PredictionCache,
    PredictionQuery,
    PredictionResponse,
    Provider,
    TaskType,
    TelemetryClient,
)

from ._wire_server import Answer, WireServer, prediction_for
from .conftest import API_KEY, make_config, warnings_of


def _query(model: str = "claude-sonnet-4") -> PredictionQuery:
    return PredictionQuery(
        task_type=TaskType.IMPLEMENTATION,
        model=model,
        provider=Provider.ANTHROPIC,
        complexity=Complexity.MEDIUM,
    )


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refresh_fills_the_cache_from_the_batch_endpoint(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    queries = [_query("a"), _query("b")]
    client.refresh_predictions_sync(queries)

    (request,) = wire.requests
    assert request.path == "/v1/predictions/batch"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {"queries": [q.model_dump(mode="json") for q in queries]}
    answer = client.get_prediction(_query("b"))
    assert isinstance(answer, PredictionResponse)
    assert answer.prediction is not None
    assert answer.prediction.input_tokens.median == 30
    assert answer.metadata.dimensions_matched == {
        "task_type": "implementation",
        "model": "b",
        "provider": "anthropic",
        "complexity": "medium",
    }


def test_unknown_query_is_not_cached(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.refresh_predictions_sync([_query("a")])
    assert client.get_prediction(_query("other")) is None


def test_refresh_sends_at_most_100_queries_per_request(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    queries = [_query(f"model-{i}") for i in range(250)]
    client.refresh_predictions_sync(queries)
    assert [len(r.body["queries"]) for r in wire.requests] == [100, 100, 50]
    assert all(client.get_prediction(q) is not None for q in queries)


def test_cached_prediction_expires_after_the_ttl(wire: WireServer) -> None:
    clock = FakeClock()
    config = make_config(wire.url, prediction_cache_ttl_seconds=60)
    client = TelemetryClient(config, clock=clock)
    client.refresh_predictions_sync([_query()])
    clock.now += 59.9
    assert client.get_prediction(_query()) is not None
    clock.now += 0.1
    assert client.get_prediction(_query()) is None


def test_empty_refresh_sends_nothing(wire: WireServer) -> None:
    TelemetryClient(make_config(wire.url)).refresh_predictions_sync([])
    assert wire.requests == []


def test_disabled_or_dry_run_refresh_sends_nothing(wire: WireServer) -> None:
    TelemetryClient(make_config(wire.url, enabled=False)).refresh_predictions_sync([_query()])
    TelemetryClient(make_config(wire.url, dry_run=True)).refresh_predictions_sync([_query()])
    assert wire.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500),
        Answer(422, body={"error": {"code": "invalid_request", "message": "bad query"}}),
        Answer(200, body={"results": "nope"}),
        Answer(200, body={"results": []}),
    ],
)
def test_failed_refresh_logs_one_warning_and_does_not_raise(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, answer: Answer
) -> None:
    wire.script(answer)
    client = TelemetryClient(make_config(wire.url))
    client.refresh_predictions_sync([_query(f"m{i}") for i in range(150)])
    assert len(wire.requests) == 1  # the first failure ends the refresh
    assert len(warnings_of(sdk_logs)) == 1
    assert client.get_prediction(_query("m0")) is None


def test_refresh_against_a_down_server_does_not_raise(
    unused_url: str, sdk_logs: pytest.LogCaptureFixture
) -> None:
    client = TelemetryClient(make_config(unused_url))
    client.refresh_predictions_sync([_query()])
    (warning,) = warnings_of(sdk_logs)
    assert "ConnectError" in warning


def test_refresh_with_junk_queries_does_not_raise(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.refresh_predictions_sync([None])  # type: ignore[list-item]
    assert wire.requests == []
    assert len(warnings_of(sdk_logs)) == 1


def test_refresh_is_capped_per_call(wire: WireServer, sdk_logs: pytest.LogCaptureFixture) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.refresh_predictions_sync([_query(f"m{i}") for i in range(1001)])
    assert sum(len(r.body["queries"]) for r in wire.requests) == 1000
    assert len(warnings_of(sdk_logs)) == 1


async def test_async_refresh_fills_the_cache(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    await client.refresh_predictions([_query("a")])
    await client.refresh_predictions([])
    assert len(wire.requests) == 1
    assert client.get_prediction(_query("a")) is not None


async def test_async_refresh_failure_logs_and_does_not_raise(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(Answer(503))
    client = TelemetryClient(make_config(wire.url))
    await client.refresh_predictions([_query()])
    await client.refresh_predictions([None])  # type: ignore[list-item]
    assert len(warnings_of(sdk_logs)) == 2
    assert client.get_prediction(_query()) is None


def test_prediction_cache_alone_honours_ttl_and_clear() -> None:
    clock = FakeClock()
    cache = PredictionCache(ttl_seconds=10, clock=clock)
    response = PredictionResponse.model_validate(prediction_for(_query().model_dump(mode="json")))
    cache.put(_query(), response)
    assert cache.size == 1
    assert cache.get(_query()) == response
    clock.now += 10
    assert cache.get(_query()) is None
    assert cache.size == 0
    cache.put(_query(), response)
    cache.clear()
    assert cache.get(_query()) is None
