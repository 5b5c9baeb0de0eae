"""The budgets page over HTTP: what it shows of each budget (no secret), the empty state, and
the burn chart's geometry for a period half spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _api_helpers import Served, make_event
from _dashboard_helpers import browser, sign_in

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.budgets.model import Budget
from mosaicstack_telemetry_server.dashboard.budgets import burn_chart
from mosaicstack_telemetry_server.dashboard.formatting import format_usd


def test_the_page_lists_the_budgets_without_their_secrets(sqlite_server: Served) -> None:
    admin_key, _ = issue_api_key(sqlite_server.storage, None, "ops", admin=True)
    with browser(sqlite_server.url) as client:
        sign_in(client, admin_key)
        empty = client.get("/dashboard/budgets")
        assert empty.status_code == 200
        assert 'id="no-budgets"' in empty.text
        assert 'id="no-alerts"' in empty.text
        body = {"amount_usd_micros": 2_000_000, "period": "week", "project": "acme/app",
                "webhook_url": "https://hooks.example/x",
                "webhook_secret": "sekrit-123"}  # fmt: skip
        assert sqlite_server.client(admin_key).put("/v1/budgets/p", json=body).status_code == 200
        stamp = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        event = make_event(sqlite_server.instance_id, timestamp=stamp, schema_version="1.1",
                           project="acme/app", actual_cost_usd_micros=500_000)  # fmt: skip
        posted = sqlite_server.client().post("/v1/events/batch", json={"events": [event]})
        assert posted.status_code == 200
        page = client.get("/dashboard/budgets")
    assert 'id="budget-p"' in page.text
    assert "project <code>acme/app</code>" in page.text
    assert f'<dd class="spent">{format_usd(500_000)}</dd>' in page.text
    assert "sekrit" not in page.text
    assert 'aria-current="page">Budgets' in page.text


def test_the_burn_of_a_half_spent_period_reaches_the_middle() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    now = datetime(2026, 11, 16, tzinfo=UTC)
    status = Budget(
        name="b", amount_usd_micros=100, period="month", instance_id=None, project=None,
        thresholds=[1.0], webhook_url=None, period_start=start,
        period_end=datetime(2026, 12, 1, tzinfo=UTC), spent_usd_micros=50,
        left_usd_micros=50, forecast_usd_micros=100,
    )  # fmt: skip
    days = [(start + timedelta(days=n), 50 if n == 3 else 0) for n in range(15)]
    chart = burn_chart(status, days, now)
    x_now, y_now, x_end, y_end = chart.forecast
    assert x_now == (72 + 704) / 2  # half the plot's width: 15 of 30 days
    assert x_end == 704
    assert y_end == chart.amount_y  # forecast 100 = amount
    assert y_now > y_end
    assert chart.rows[2] == ("2026-11-03", "$0.00")
    assert chart.rows[3][0] == "2026-11-04"
    assert len(chart.spent_points.split()) == 16
