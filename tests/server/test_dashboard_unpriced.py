"""The dashboard never shows a model nobody could price as $0.00 (issue 18 item 5): events
sent through the real API on both backends, the overview read over HTTP."""

from __future__ import annotations

from _api_helpers import Served
from _dashboard_helpers import (
    browser,
    day_of_the_events,
    sign_in,
    submit_priced_and_unpriced,
    table,
    total,
)


def test_a_model_without_a_price_is_unpriced_and_a_free_one_costs_nothing(server: Served) -> None:
    submit_priced_and_unpriced(server)
    with browser(server.url) as client:
        sign_in(client, server.key)
        page = client.get("/dashboard", params={"days": 7})
        lab = client.get("/dashboard", params={"days": 7, "project": "acme/lab"})
        web = client.get("/dashboard", params={"days": 7, "project": "acme/web"})
    assert total(page, "cost_usd_micros") == "$2.46 + unpriced (3 tasks)"
    head, rows = table(page, "chart-spend")
    (row,) = rows
    cells = dict(zip(head, row, strict=True))
    assert cells == {
        "Day": day_of_the_events().date().isoformat(),
        "claude-sonnet-4-5": "$2.46",
        "qwen3-coder": "$0.00",  # free, and said so
        "mystery-coder-9": "unpriced (3 tasks)",
        "Total": "$2.46 + unpriced (3 tasks)",
    }
    assert 'id="unpriced-note"' in page.text
    assert "<code>mystery-coder-9</code> (3 tasks)" in page.text
    assert "$2.46 + unpriced (3 tasks)" in page.text  # the chart's summary
    # Spend by project, task type and harness: each group counts the unpriced tasks it holds.
    head, rows = table(page, "chart-project")
    by_project = {row[0]: dict(zip(head, row, strict=True))["Spend"] for row in rows}
    assert by_project == {"acme/lab": "unpriced (3 tasks)", "acme/web": "$2.46"}
    head, rows = table(page, "chart-task-type")
    (spend,) = (dict(zip(head, row, strict=True))["Spend"] for row in rows)
    assert spend == "$2.46 + unpriced (3 tasks)"
    assert "acme/lab unpriced (3 tasks) · 3 tasks" in page.text  # the bar chart's summary

    # A project whose only model has no price: nothing priced, and said so.
    assert total(lab, "cost_usd_micros") == "unpriced (3 tasks)"
    # One whose models are priced or free: plain dollars, and no note.
    assert total(web, "cost_usd_micros") == "$2.46"
    assert "unpriced" not in web.text
