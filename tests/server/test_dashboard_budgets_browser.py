"""The budgets page in a real browser (headless chromium): each budget's burn with its
forecast line, its figures equal to the API's, and what the alerts said; an instance key sees
only the budgets covering its instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _api_helpers import Served, make_event, serve, wait_until
from _browser_helpers import chromium, require_chromium, wait_for

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.budgets.alerts import due_alerts
from mosaicstack_telemetry_server.budgets.model import Budget
from mosaicstack_telemetry_server.budgets.periods import period_bounds
from mosaicstack_telemetry_server.dashboard.formatting import format_usd
from mosaicstack_telemetry_server.storage._budgets import budgets_of


@pytest.fixture
def site(tmp_path: Any) -> Iterator[tuple[Served, str]]:
    """A server with two budgets (this instance's, another's) and one alert claimed."""
    require_chromium()
    with serve(f"sqlite:///{tmp_path / 'telemetry.db'}", budget_check_interval=0.2) as served:
        admin_key, _ = issue_api_key(served.storage, None, "ops", admin=True)
        admin = served.client(admin_key)
        ours = {"amount_usd_micros": 50_000_000, "period": "month", "thresholds": [0.5],
                "instance_id": str(served.instance_id)}  # fmt: skip
        theirs = {**ours, "instance_id": str(uuid.uuid4())}
        assert admin.put("/v1/budgets/team", json=ours).status_code == 200
        assert admin.put("/v1/budgets/elsewhere", json=theirs).status_code == 200
        now = datetime.now(UTC)
        start, _ = period_bounds("month", now)
        stamps = [max(start, now - timedelta(days=1)), now - timedelta(seconds=5)]
        events = [
            make_event(served.instance_id, timestamp=stamp.isoformat(),
                       actual_cost_usd_micros=15_000_000)
            for stamp in stamps
        ]  # fmt: skip
        assert served.client().post("/v1/events/batch", json={"events": events}).status_code == 200
        status = Budget.model_validate(admin.get("/v1/budgets").json()["budgets"][1])
        due = len(due_alerts(status, datetime.now(UTC)))  # the forecast's depends on the date
        wait_until(lambda: len(budgets_of(served.storage).list_alerts(5)) == due, 10, "alerts")
        yield served, admin_key


def _by(how: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, how)


def _sign_in_and_open(driver: Any, served: Served, key: str) -> None:
    from selenium.webdriver.common.keys import Keys

    driver.get(served.url + "/dashboard")
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "key"), "the sign-in form")
    driver.find_element(_by("ID"), "key").send_keys(key + Keys.ENTER)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
    driver.find_element(_by("LINK_TEXT"), "Budgets").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "alerts-title"), "the budgets page")


def test_the_burn_forecast_and_alerts_are_shown(site: tuple[Served, str]) -> None:
    served, admin_key = site
    with chromium() as driver:
        _sign_in_and_open(driver, served, admin_key)
        api = {b["name"]: b for b in served.client(admin_key).get("/v1/budgets").json()["budgets"]}
        section = driver.find_element(_by("ID"), "budget-team")
        for field in ("spent", "left", "forecast"):
            shown = section.find_element(_by("CSS_SELECTOR"), f"dd.{field}").text
            assert shown == format_usd(api["team"][f"{field}_usd_micros"]), field
        chart = section.find_element(_by("CSS_SELECTOR"), "svg.burn")
        assert chart.is_displayed()
        assert chart.size["width"] > 300
        points = chart.find_element(_by("CSS_SELECTOR"), "polyline.spent-line")
        assert len(points.get_attribute("points").split()) >= 2
        forecast = chart.find_element(_by("CSS_SELECTOR"), "line.forecast-line")
        assert forecast.get_attribute("stroke-dasharray") == "6 4"
        assert float(forecast.get_attribute("x2")) > float(forecast.get_attribute("x1"))
        rows = driver.find_elements(_by("CSS_SELECTOR"), "#alerts tr.alert-row")
        alerts = budgets_of(served.storage).list_alerts(5)
        assert len(rows) == len(alerts)
        texts = [row.find_element(_by("CSS_SELECTOR"), ".alert-text").text for row in rows]
        assert any(t.startswith("Budget team: $30.00 of $50.00 spent this month") for t in texts)
        states = {row.find_element(_by("CSS_SELECTOR"), ".alert-state").text for row in rows}
        assert states == {"no webhook"}
        assert driver.find_elements(_by("ID"), "budget-elsewhere")

    with chromium() as driver:  # the instance key: its budget only, and its alerts
        _sign_in_and_open(driver, served, served.key)
        assert driver.find_elements(_by("ID"), "budget-team")
        assert not driver.find_elements(_by("ID"), "budget-elsewhere")
        shown = driver.find_elements(_by("CSS_SELECTOR"), "#alerts tr.alert-row")
        assert len(shown) == len(budgets_of(served.storage).list_alerts(5))
