"""Chart shapes, number formats and date ranges: pure functions, checked against arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaicstack_telemetry_server.dashboard import charts
from mosaicstack_telemetry_server.dashboard.data import fold
from mosaicstack_telemetry_server.dashboard.formatting import (
    format_compact,
    format_percent,
    format_usd,
)
from mosaicstack_telemetry_server.dashboard.ranges import MAX_DAYS, parse_range
from mosaicstack_telemetry_server.storage.base import UsageRow

TODAY = date(2026, 11, 30)
DAYS = [TODAY - timedelta(days=n) for n in range(6, -1, -1)]
MODELS = [f"model-{n}" for n in range(10)]


def _group(key: dict[str, str], cost: int, tasks: int = 1, **rates: float) -> dict[str, Any]:
    return {
        "key": key,
        "cost_usd_micros": cost,
        "tasks": tasks,
        "success_rate": rates.get("success", 1.0),
        "gate_pass_rate": rates.get("gates", 1.0),
    }


cells = st.lists(
    st.tuples(st.sampled_from(DAYS), st.sampled_from(MODELS), st.integers(0, 10**9)),
    max_size=40,
    unique_by=lambda cell: (cell[0], cell[1]),
)


@given(cells)
def test_stacked_columns_add_up_to_each_days_spend(rows: list[tuple[date, str, int]]) -> None:
    report = {"groups": [_group({"day": d.isoformat(), "model": m}, c) for d, m, c in rows]}
    chart = charts.spend_over_time_chart(report, DAYS)
    assert [column.label for column in chart.columns] == [d.isoformat() for d in DAYS]
    top = chart.plot_bottom - chart.ticks[-1].pos  # the axis' full height in units
    full = sum(c for _, _, c in rows)
    for column in chart.columns:
        day_total = sum(c for d, _, c in rows if d.isoformat() == column.label)
        assert column.total == format_usd(day_total)
        drawn = sum(segment.height for segment in column.segments)
        assert drawn <= top + 1e-6
        if day_total:
            ratio = drawn / top
            assert ratio == pytest.approx(day_total / charts.nice_ceiling(_max_day(rows)))
    assert len(chart.legend) <= len(charts.PALETTE)
    assert format_usd(full) in chart.summary


def _max_day(rows: list[tuple[date, str, int]]) -> int:
    totals: dict[date, int] = {}
    for d, _, c in rows:
        totals[d] = totals.get(d, 0) + c
    return max(totals.values())


def test_models_past_the_palette_are_summed_as_other() -> None:
    report = {
        "groups": [
            _group({"day": DAYS[0].isoformat(), "model": m}, 1000 * (n + 1))
            for n, m in enumerate(MODELS)
        ]
    }
    chart = charts.spend_over_time_chart(report, DAYS)
    names = [name for _, name in chart.legend]
    assert names[-1] == charts.OTHER
    assert len(names) == len(charts.PALETTE)
    assert chart.table_rows[0][-1] == format_usd(sum(1000 * (n + 1) for n in range(10)))


@given(st.floats(min_value=1e-3, max_value=1e15))
def test_an_axis_ends_at_a_round_number_at_or_above_the_top(value: float) -> None:
    top = charts.nice_ceiling(value)
    assert value <= top <= value * 5.0001


def test_an_empty_axis_still_has_a_length() -> None:
    assert charts.nice_ceiling(0) == 1.0


def test_bars_are_proportional_to_spend_and_name_task_counts() -> None:
    report = {
        "groups": [
            _group({"task_type": "testing"}, 250_000, tasks=3),
            _group({"task_type": "planning"}, 1_000_000, tasks=1),
        ]
    }
    chart = charts.spend_by_chart(report, "task_type", "task type")
    assert [bar.label for bar in chart.bars] == ["planning", "testing"]
    assert chart.bars[1].width == pytest.approx(chart.bars[0].width / 4)
    assert chart.bars[1].value == "$0.2500 · 3 tasks"
    assert chart.table_rows == [["planning", "$1.00", "1"], ["testing", "$0.2500", "3"]]


def test_empty_reports_draw_empty_charts_that_say_so() -> None:
    empty: dict[str, Any] = {"groups": []}
    assert "no tasks" in charts.spend_by_chart(empty, "harness", "harness").summary
    assert "no tasks" in charts.rates_chart(empty).summary
    assert "no tasks" in charts.token_range_chart([]).summary
    assert charts.spend_over_time_chart(empty, DAYS).table_rows == []


def test_rates_are_drawn_on_a_full_scale() -> None:
    report = {"groups": [_group({"model": "m"}, 1, tasks=4, success=0.75, gates=0.5)]}
    chart = charts.rates_chart(report)
    success, gates = chart.bars
    assert success.width == pytest.approx(chart.plot_width * 0.75)
    assert gates.width == pytest.approx(chart.plot_width * 0.5)
    assert chart.table_rows == [["m", "4", "75.0%", "50.0%"]]


def test_token_ranges_keep_their_order_on_one_axis() -> None:
    percentiles = [
        {
            "model": "m",
            "input_tokens": {"p10": 100, "p50": 400, "p90": 900},
            "output_tokens": {"p10": 10, "p50": 40, "p90": 90},
        }
    ]
    chart = charts.token_range_chart(percentiles)
    for row in chart.rows:
        assert chart.label_width <= row.x10 <= row.x50 <= row.x90
    assert [row.shown for row in chart.rows] == ["m", ""]
    assert chart.table_rows[0] == ["m", "input", "100", "400", "900"]


@pytest.mark.parametrize(
    ("micros", "text"),
    [(0, "$0.00"), (1, "$0.0000"), (1234, "$0.0012"), (1_000_000, "$1.00"), (-5_000_000, "$-5.00")],
)
def test_dollars_from_micro_dollars(micros: int, text: str) -> None:
    assert format_usd(micros) == text


@pytest.mark.parametrize(
    ("value", "text"), [(999, "999"), (125_000, "125k"), (1_500_000, "1.5M"), (2 * 10**9, "2G")]
)
def test_compact_counts(value: int, text: str) -> None:
    assert format_compact(value) == text


def test_percent() -> None:
    assert format_percent(0.8333) == "83.3%"


@given(st.dates(date(2020, 1, 1), date(2030, 1, 1)), st.integers(0, 400))
def test_a_range_of_days_is_shown_whole_or_refused(first: date, span: int) -> None:
    last = first + timedelta(days=span)
    chosen = parse_range({"from": first.isoformat(), "to": last.isoformat()}, TODAY)
    if span + 1 <= MAX_DAYS:
        assert (chosen.first, chosen.last, chosen.error) == (first, last, None)
        assert len(chosen.days) == span + 1
        assert chosen.end - chosen.start == timedelta(days=span + 1)
    else:
        assert chosen.error is not None
        assert (chosen.last, len(chosen.days)) == (TODAY, 30)


@pytest.mark.parametrize("days", [7, 30, 90])
def test_presets_end_today(days: int) -> None:
    chosen = parse_range({"days": str(days)}, TODAY)
    assert chosen.last == TODAY
    assert len(chosen.days) == days
    assert chosen.preset(TODAY) == days


def test_one_date_alone_is_one_day_and_no_date_is_the_last_30_days() -> None:
    assert parse_range({"to": "2026-11-02"}, TODAY).days == [date(2026, 11, 2)]
    default = parse_range({}, TODAY)
    assert (default.error, len(default.days), default.preset(TODAY)) == (None, 30, 30)
    assert parse_range({"from": "2026-01-01", "to": "2026-01-05"}, TODAY).preset(TODAY) is None


usage_rows = st.lists(
    st.builds(
        UsageRow,
        key=st.tuples(st.sampled_from(["2026-11-01", "2026-11-02"]), st.sampled_from(MODELS[:3])),
        tasks=st.integers(0, 50),
        input_tokens=st.integers(0, 10**9),
        output_tokens=st.integers(0, 10**9),
        cost_usd_micros=st.integers(0, 10**9),
        duration_ms=st.integers(0, 10**9),
        successes=st.integers(0, 50),
        gate_passes=st.integers(0, 50),
    ),
    max_size=20,
)


@given(usage_rows)
def test_a_fold_by_model_sums_every_day_of_each_model(rows: list[UsageRow]) -> None:
    report = fold(rows, ("day", "model"), ("model",))
    for group in report["groups"]:
        mine = [row for row in rows if row.key[1] == group["key"]["model"]]
        tasks = sum(row.tasks for row in mine)
        assert group["tasks"] == tasks > 0
        assert group["cost_usd_micros"] == sum(row.cost_usd_micros for row in mine)
        successes = sum(row.successes for row in mine)
        assert group["success_rate"] == round(successes / tasks, 4)
    shown = {group["key"]["model"] for group in report["groups"]}
    assert shown == {row.key[1] for row in rows if row.tasks} or not any(r.tasks for r in rows)
    assert [g["key"]["model"] for g in report["groups"]] == sorted(shown)
    assert report["totals"]["tasks"] == sum(row.tasks for row in rows)
    assert report["totals"]["gate_pass_rate"] == (
        round(sum(r.gate_passes for r in rows) / report["totals"]["tasks"], 4)
        if report["totals"]["tasks"]
        else 0.0
    )


def _row(
    day: str, model: str, provider: str, tasks: int, cost: int, tokens: int = 1000
) -> UsageRow:
    return UsageRow((day, model, provider), tasks, tokens, 0, cost, 0, tasks, tasks)


def test_a_fold_by_model_and_provider_counts_each_groups_unpriced_tasks() -> None:
    rows = [
        _row("2026-11-01", "mystery-coder-9", "custom", 3, 0),
        _row("2026-11-02", "mystery-coder-9", "anthropic", 2, 0),  # no such model there either
        _row("2026-11-02", "mystery-coder-9", "custom", 1, 0, tokens=0),  # no tokens
        _row("2026-11-02", "claude-sonnet-4-5", "anthropic", 1, 5_000_000),
        _row("2026-11-02", "qwen3-coder", "ollama", 4, 0),
    ]
    dimensions = ("day", "model", "provider")
    by_model = fold(rows, dimensions, ("model",))
    unpriced = {g["key"]["model"]: g["unpriced_tasks"] for g in by_model["groups"]}
    assert unpriced == {"claude-sonnet-4-5": 0, "mystery-coder-9": 5, "qwen3-coder": 0}
    assert by_model["totals"]["unpriced_tasks"] == 5
    by_day = fold(rows, dimensions, ("day", "model"))
    assert [g["unpriced_tasks"] for g in by_day["groups"]] == [3, 0, 2, 0]
    # Without the provider in the rows, nothing can be told unpriced.
    plain = [replace(row, key=row.key[:2]) for row in rows]
    assert fold(plain, ("day", "model"), ("model",))["totals"]["unpriced_tasks"] == 0


def test_the_spend_table_writes_unpriced_cells_and_days_with_only_unpriced_usage() -> None:
    groups = [
        {**_group({"day": DAYS[0].isoformat(), "model": "mystery"}, 0, 3), "unpriced_tasks": 3},
        {**_group({"day": DAYS[1].isoformat(), "model": "mystery"}, 0, 1), "unpriced_tasks": 1},
        _group({"day": DAYS[1].isoformat(), "model": "priced"}, 2_500_000),
        _group({"day": DAYS[2].isoformat(), "model": "local"}, 0),
    ]
    chart = charts.spend_over_time_chart({"groups": groups}, DAYS)
    assert chart.table_head == ["Day", "priced", "local", "mystery", "Total"]
    assert chart.table_rows == [
        [DAYS[0].isoformat(), "$0.00", "$0.00", "unpriced (3 tasks)", "unpriced (3 tasks)"],
        [DAYS[1].isoformat(), "$2.50", "$0.00", "unpriced (1 task)", "$2.50 + unpriced (1 task)"],
    ]
    assert chart.columns[0].total == "unpriced (3 tasks)"
    assert "total $2.50 + unpriced (4 tasks)" in chart.summary


def test_unpriced_tasks_of_models_past_the_palette_are_said_in_other_models() -> None:
    day = DAYS[0].isoformat()
    groups = [_group({"day": day, "model": m}, 1_000_000 * (n + 1)) for n, m in enumerate(MODELS)]
    groups.append({**_group({"day": day, "model": "mystery"}, 0, 2), "unpriced_tasks": 2})
    chart = charts.spend_over_time_chart({"groups": groups}, DAYS)
    assert chart.table_head[-2] == charts.OTHER
    (row,) = chart.table_rows
    assert row[-2].endswith(" + unpriced (2 tasks)")
    assert row[-1] == "$55.00 + unpriced (2 tasks)"
