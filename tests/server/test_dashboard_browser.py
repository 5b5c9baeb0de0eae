"""The dashboard in a real browser (headless chromium): sign in, charts, range, explorer,
sign out; a wrong key and a cross-site POST refused; readable at phone width."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _api_helpers import Served, make_event, serve
from _browser_helpers import PHONE, chromium, other_site, require_chromium, screenshot, wait_for
from _dashboard_helpers import (
    project_token_events,
    seed,
    submit_priced_and_unpriced,
    token_table,
)

from mosaicstack_telemetry_server.dashboard.formatting import (
    format_count,
    format_percent,
    format_usd,
)

CHARTS = ("chart-spend", "chart-task-type", "chart-harness", "chart-tokens", "chart-rates")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over a SQLite file with two instances' worth of generated events."""
    require_chromium()
    path = tmp_path_factory.mktemp("dashboard") / "telemetry.db"
    with serve(f"sqlite:///{path}") as served:
        seed(served.storage, [served.instance_id, uuid.uuid4()], 1500)
        yield served


@pytest.fixture
def driver(site: Served) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def _by(how: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, how)


def _sign_in(driver: Any, site: Served, key: str) -> None:
    """Sign in with the keyboard alone: the key field has focus, Enter submits."""
    from selenium.webdriver.common.keys import Keys

    driver.get(site.url + "/dashboard")
    wait_for(driver, lambda d: d.current_url.endswith("/dashboard/sign-in"), "the sign-in form")
    field = driver.switch_to.active_element
    assert field.get_attribute("id") == "key"  # focused on arrival
    field.send_keys(key + Keys.ENTER)


def _api_totals(site: Served, days: int, project: str | None = None) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    params: dict[str, Any] = {
        "from": today - timedelta(days=days - 1),
        "to": today + timedelta(days=1),
    }
    if project:
        params["project"] = project
    response = site.client().get("/v1/usage", params=params)
    assert response.status_code == 200
    totals: dict[str, Any] = response.json()["totals"]
    return totals


def _assert_totals_shown(driver: Any, totals: dict[str, Any]) -> None:
    def shown(field: str) -> str:
        return str(driver.find_element(_by("ID"), f"total-{field}").text)

    assert totals["tasks"] > 0
    assert shown("tasks") == format_count(totals["tasks"])
    assert shown("cost_usd_micros") == format_usd(totals["cost_usd_micros"])
    assert shown("input_tokens") == format_count(totals["input_tokens"])
    assert shown("output_tokens") == format_count(totals["output_tokens"])
    assert shown("success_rate") == format_percent(totals["success_rate"])
    assert shown("gate_pass_rate") == format_percent(totals["gate_pass_rate"])


def _assert_charts_render(driver: Any) -> None:
    for chart_id in CHARTS:
        chart = driver.find_element(_by("ID"), chart_id)
        assert chart.is_displayed(), chart_id
        assert chart.size["width"] > 200, chart_id
        assert chart.size["height"] > 50, chart_id
        assert chart.get_attribute("role") == "img"
        marks = chart.find_elements(_by("CSS_SELECTOR"), "rect")
        assert len(marks) >= 3, f"{chart_id} draws nothing"
        # A text alternative: the summary, and the table of the numbers.
        assert driver.find_element(_by("ID"), f"{chart_id}-desc").get_attribute("textContent")
        assert driver.find_elements(_by("CSS_SELECTOR"), f"#{chart_id}-table tbody tr")


def test_sign_in_charts_range_explorer_and_sign_out(driver: Any, site: Served) -> None:
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
    _assert_charts_render(driver)
    _assert_totals_shown(driver, _api_totals(site, 30))
    screenshot(driver, "dashboard-laptop")

    driver.find_element(_by("CSS_SELECTOR"), 'a[data-days="7"]').click()
    wait_for(
        driver,
        lambda d: d.find_elements(_by("CSS_SELECTOR"), 'a[data-days="7"][aria-current="true"]'),
        "the 7-day range",
    )
    _assert_totals_shown(driver, _api_totals(site, 7))

    _use_the_explorer(driver, site)

    driver.find_element(_by("CSS_SELECTOR"), "form.signout button").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "key"), "the sign-in form")
    driver.get(site.url + "/dashboard")
    assert driver.current_url.endswith("/dashboard/sign-in")


def _use_the_explorer(driver: Any, site: Served) -> None:
    from selenium.webdriver.support.ui import Select

    driver.find_element(_by("LINK_TEXT"), "Prediction explorer").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "task_type"), "the explorer")
    query = {
        "task_type": "implementation",
        "model": "claude-sonnet-4",
        "provider": "openrouter",
        "complexity": "critical",
    }
    for name in ("task_type", "provider", "complexity"):
        Select(driver.find_element(_by("ID"), name)).select_by_value(query[name])
    driver.find_element(_by("ID"), "model").send_keys(query["model"])
    driver.find_element(_by("CSS_SELECTOR"), "form.explorer button").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "prediction"), "the prediction")
    api = site.client().post("/v1/predictions/batch", json={"queries": [query]})
    expected = api.json()["results"][0]["metadata"]
    assert driver.find_element(_by("ID"), "fallback-level").text == str(expected["fallback_level"])
    assert driver.find_element(_by("ID"), "confidence").text == expected["confidence"]
    note = expected["fallback_note"] or "Exact match: nothing dropped."
    assert driver.find_element(_by("ID"), "fallback-note").text == note


def test_a_wrong_key_is_refused(driver: Any, site: Served) -> None:
    _sign_in(driver, site, "ab" * 32)
    error = wait_for(driver, lambda d: d.find_elements(_by("ID"), "sign-in-error"), "an error")
    assert "not accepted" in error[0].text
    assert "ab" * 32 not in driver.page_source
    assert driver.current_url.endswith("/dashboard/sign-in")


def test_a_cross_site_post_is_refused(driver: Any, site: Served) -> None:
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
    # Another site's page posts to sign-out (and could as well to sign-in, with its own key).
    attack = (
        f'<form id="f" method="post" action="{site.url}/dashboard/sign-out">'
        '<input name="csrf" value="guess"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    with other_site(attack) as attacker:
        driver.get(attacker)
        wait_for(driver, lambda d: d.current_url.startswith(site.url), "the forged post")
        wait_for(driver, lambda d: "Refused" in d.page_source, "the refusal")
    driver.get(site.url + "/dashboard")
    assert driver.find_elements(_by("ID"), "totals"), "the forged sign-out signed us out"


def test_readable_at_phone_width_and_labelled(driver: Any, site: Served) -> None:
    driver.set_window_size(*PHONE)
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, "the page scrolls sideways at phone width"
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select')]"
        ".filter(e => !e.labels.length).map(e => e.name)"
    )
    assert unlabelled == []
    screenshot(driver, "dashboard-phone")


def test_every_file_comes_from_the_server_itself(driver: Any, site: Served) -> None:
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded, "no stylesheet loaded"
    assert all(url.startswith(site.url) for url in loaded), loaded


def _projects_charted(driver: Any) -> set[str]:
    """The first cell of each row of the spend-by-project chart's table of numbers."""
    rows = driver.find_elements(_by("CSS_SELECTOR"), "#chart-project-table tbody tr")
    first = [row.find_elements(_by("CSS_SELECTOR"), "th, td")[0] for row in rows]
    return {str(cell.get_attribute("textContent")).strip() for cell in first}


def test_a_picked_project_shows_that_projects_numbers_on_every_page(
    driver: Any, site: Served
) -> None:
    from selenium.webdriver.support.ui import Select

    # A 1.1 client's events of two projects, beside the simulated 1.0 ones.
    now = datetime.now(UTC)
    events = [
        make_event(
            site.instance_id,
            schema_version="1.1",
            project=("acme/web", "acme/billing")[n % 2],
            timestamp=(now - timedelta(hours=n + 1)).isoformat().replace("+00:00", "Z"),
            actual_cost_usd_micros=1_000_000 * (n + 1),
        )
        for n in range(6)
    ]
    assert site.client().post("/v1/events/batch", json={"events": events}).status_code == 200
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "chart-project"), "the overview")
    everyone = _api_totals(site, 30)
    _assert_totals_shown(driver, everyone)
    assert _projects_charted(driver) >= {
        "acme/web",
        "acme/billing",
        "(no project)",
    }

    Select(driver.find_element(_by("ID"), "project")).select_by_value("acme/web")
    driver.find_element(_by("CSS_SELECTOR"), "form.range button").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "current-project"), "the project's page")
    web = _api_totals(site, 30, "acme/web")
    assert web["tasks"] == 3
    assert web["cost_usd_micros"] == 1_000_000 * (1 + 3 + 5)
    _assert_totals_shown(driver, web)
    assert driver.find_element(_by("ID"), "total-tasks").text != format_count(everyone["tasks"])
    assert _projects_charted(driver) == {"acme/web"}

    # The filter follows the navigation: to the explorer and back.
    driver.find_element(_by("ID"), "nav-explorer").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "task_type"), "the explorer")
    assert "project=acme%2Fweb" in driver.current_url
    driver.find_element(_by("ID"), "nav-overview").click()
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "current-project"), "the overview")
    _assert_totals_shown(driver, web)
    assert driver.find_element(_by("CSS_SELECTOR"), "#project option:checked").text == "acme/web"


def _pick_project(driver: Any, project: str) -> None:
    """Pick a project in the overview's filter and show it."""
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(_by("ID"), "project")).select_by_value(project)
    driver.find_element(_by("CSS_SELECTOR"), "form.range button").click()
    wait_for(
        driver,
        lambda d: [e for e in d.find_elements(_by("ID"), "current-project") if e.text == project],
        f"the page of {project}",
    )


def test_a_model_without_a_price_reads_unpriced_in_the_browser(sqlite_server: Served) -> None:
    require_chromium()
    submit_priced_and_unpriced(sqlite_server)
    with chromium() as driver:
        _sign_in(driver, sqlite_server, sqlite_server.key)
        wait_for(driver, lambda d: d.find_elements(_by("ID"), "totals"), "the overview")
        spend = driver.find_element(_by("ID"), "total-cost_usd_micros")
        assert spend.text == "$2.46 + unpriced (3 tasks)"
        note = driver.find_element(_by("ID"), "unpriced-note")
        assert note.is_displayed()
        assert "mystery-coder-9 (3 tasks)" in note.text
        _pick_project(driver, "acme/lab")
        spend = driver.find_element(_by("ID"), "total-cost_usd_micros")
        assert spend.text == "unpriced (3 tasks)"
        _pick_project(driver, "acme/web")
        assert driver.find_element(_by("ID"), "total-cost_usd_micros").text == "$2.46"
        assert not driver.find_elements(_by("ID"), "unpriced-note")


def _token_rows(driver: Any) -> list[list[str]]:
    """The token chart's table of numbers, cell by cell."""
    rows = driver.find_elements(_by("CSS_SELECTOR"), "#chart-tokens-table tbody tr")
    return [
        [
            str(cell.get_attribute("textContent")).strip()
            for cell in row.find_elements(_by("CSS_SELECTOR"), "th, td")
        ]
        for row in rows
    ]


def test_picking_a_project_draws_that_projects_token_ranges(driver: Any, site: Served) -> None:
    events = project_token_events(site, "tokens/heavy")
    assert site.client().post("/v1/events/batch", json={"events": events}).status_code == 200
    _sign_in(driver, site, site.key)
    wait_for(driver, lambda d: d.find_elements(_by("ID"), "chart-tokens"), "the overview")
    everyone = _token_rows(driver)
    assert not driver.find_elements(_by("ID"), "tokens-note")
    drawn = driver.find_elements(_by("CSS_SELECTOR"), "#chart-tokens rect")

    _pick_project(driver, "tokens/heavy")
    assert _token_rows(driver) == token_table(events)
    assert _token_rows(driver) != everyone
    assert "most recent tasks" in driver.find_element(_by("ID"), "tokens-note").text
    # Two models, input and output: four spans drawn, where every project's models drew more.
    spans = driver.find_elements(_by("CSS_SELECTOR"), "#chart-tokens rect")
    assert len(spans) == 4 < len(drawn)
