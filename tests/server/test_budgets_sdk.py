"""The SDK's budget check against a real server: the status fetched and cached like
predictions, the p90 derived from the token percentiles, and the verdicts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from _api_helpers import Served, make_event

from mosaicstack_telemetry import (
    BudgetStatus,
    PredictionResponse,
    TelemetryClient,
    TelemetryConfig,
    check_budgets,
    estimated_cost_p90,
)
from mosaicstack_telemetry_server.auth import issue_api_key


def _client(served: Served, clock: list[float]) -> TelemetryClient:
    config = TelemetryConfig(
        server_url=served.url,
        api_key=served.key,
        instance_id=str(served.instance_id),
        max_retries=0,
    )
    return TelemetryClient(config, clock=lambda: clock[0])


def _prediction(median_cost: int, p90_in: int, p90_out: int) -> PredictionResponse:
    tokens = {"p10": 10, "p25": 50, "median": 100, "p75": 150}
    return PredictionResponse.model_validate(
        {
            "prediction": {
                "input_tokens": {**tokens, "p90": p90_in},
                "output_tokens": {**tokens, "p90": p90_out},
                "cost_usd_micros": {"median": median_cost},
                "duration_ms": {"median": 0},
                "correction_factors": {"input": 1.0, "output": 1.0},
                "quality": {"gate_pass_rate": 1.0, "success_rate": 1.0},
            },
            "metadata": {
                "sample_size": 40,
                "fallback_level": 0,
                "confidence": "medium",
                "last_updated": None,
                "dimensions_matched": None,
                "fallback_note": None,
                "cache_hit": False,
            },
        }
    )


def test_the_client_fetches_caches_and_checks_the_budget_status(sqlite_server: Served) -> None:
    served = sqlite_server
    admin_key, _ = issue_api_key(served.storage, None, "ops", admin=True)
    admin = served.client(admin_key)
    body = {
        "amount_usd_micros": 5_000_000,
        "period": "month",
        "instance_id": str(served.instance_id),
    }
    assert admin.put("/v1/budgets/mine", json=body).status_code == 200
    stamp = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    event = make_event(served.instance_id, timestamp=stamp, actual_cost_usd_micros=2_650_000)
    assert served.client().post("/v1/events/batch", json={"events": [event]}).status_code == 200
    clock = [1000.0]
    client = _client(served, clock)
    assert client.get_budget_status() is None
    assert client.check_budget(_prediction(1, 100, 100), block=True) is None  # unknown: no block
    client.refresh_budgets_sync()
    (status,) = client.get_budget_status() or []
    assert (status.name, status.spent_usd_micros, status.left_usd_micros) == (
        "mine",
        2_650_000,
        2_350_000,
    )
    warn = client.check_budget(_prediction(2_000_000, 205, 150))
    assert warn is not None
    assert (warn.action, warn.p90_usd_micros) == ("warn", 4_100_000)
    assert warn.message == "p90 $4.10, $2.35 left this month (budget mine)"
    assert client.check_budget(_prediction(2_000_000, 100, 100)).action == "ok"  # type: ignore[union-attr]
    blocked = client.check_budget(_prediction(3_000_000, 100, 100), block=True)
    assert blocked is not None
    assert blocked.action == "block"
    clock[0] += 901  # older than the status's TTL: unknown again
    assert client.get_budget_status() is None
    asyncio.run(client.refresh_budgets())
    assert client.get_budget_status() is not None


def test_an_unreachable_server_leaves_the_status_unknown(sqlite_server: Served) -> None:
    config = TelemetryConfig(
        server_url="http://127.0.0.1:9", api_key=sqlite_server.key, max_retries=0,
        instance_id=str(sqlite_server.instance_id), request_timeout_seconds=1,
    )  # fmt: skip
    unreachable = TelemetryClient(config)
    unreachable.refresh_budgets_sync()
    asyncio.run(unreachable.refresh_budgets())
    assert unreachable.get_budget_status() is None
    assert unreachable.check_budget(None, block=True) is None


def _status(left: int, name: str = "b", period: str = "day") -> BudgetStatus:
    return BudgetStatus.model_validate(
        {"name": name, "amount_usd_micros": 10, "period": period, "spent_usd_micros": 10 - left,
         "left_usd_micros": left, "forecast_usd_micros": 0,
         "period_start": "2026-12-07T00:00:00Z", "period_end": "2026-12-08T00:00:00Z"}
    )  # fmt: skip


def test_the_rule_blocks_a_spent_budget_and_the_tightest_budget_decides() -> None:
    assert check_budgets([], 5, 9, block=True).action == "ok"
    narrowed = _status(0, "acme").model_copy(update={"project": "acme/app"})
    assert check_budgets([narrowed], 1, 1, block=True).action == "ok"  # another project's
    assert check_budgets([narrowed], 1, 1, project="acme/app").action == "block"
    spent = check_budgets([_status(5, "loose"), _status(0, "spent")], 1, 1)
    assert (spent.action, spent.budget) == ("block", "spent")
    assert check_budgets([_status(5)], 6, 6).action == "warn"  # median over, not block mode
    assert check_budgets([_status(5)], 6, 6, block=True).action == "block"
    assert check_budgets([_status(5)], 5, 5, block=True).action == "ok"
    assert estimated_cost_p90(None) == (0, 0)
    assert estimated_cost_p90(_prediction(1000, 50, 90)) == (1000, 1000)  # never below median
