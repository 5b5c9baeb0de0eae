"""Charts as plain data: the shapes of each SVG, computed from usage reports, drawn by the
templates (`templates/_charts.html`). No JavaScript: a chart is a server-rendered SVG with a
text summary and the table of its numbers next to it (screen readers, copy and paste).

Inputs are the JSON shape of `GET /v1/usage` (a dict with `groups` and `totals`), so a chart
shows exactly what the API answers for the same range. A group may carry `unpriced_tasks`
(`data.fold`): the spend per model then writes them "unpriced", never $0.00 (`unpriced.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mosaicstack_telemetry_server.dashboard.formatting import (
    format_compact,
    format_count,
    format_percent,
    format_spend,
    format_usd,
)

__all__ = [
    "OTHER",
    "PALETTE",
    "Bar",
    "BarChart",
    "RangeChart",
    "RangeRow",
    "Segment",
    "StackedChart",
    "Tick",
    "nice_ceiling",
    "rates_chart",
    "spend_by_chart",
    "spend_over_time_chart",
    "token_range_chart",
]

# Okabe-Ito: told apart with the common colour-vision deficiencies, each >= 3:1 on white
# (its yellow is left out: it is not). Series past the palette are summed as "other".
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
OTHER = "other models"
OTHER_COLOUR = "#767676"
SUCCESS_COLOUR = PALETTE[2]
GATES_COLOUR = PALETTE[0]
# Drawing area of every chart, in SVG user units (the SVG scales to its box).
WIDTH = 720
PLOT_LEFT = 64
PLOT_TOP = 12
STACK_HEIGHT = 220
ROW_HEIGHT = 28
# Gridlines divide an axis in fifths: 0, 4, 8, 12, 16, 20 for an axis ending at 20.
TICKS = 5
# The bar and range charts sit two to a row on a laptop: a narrower box keeps their text as
# large as the stacked chart's once scaled.
HALF_WIDTH = 480
LABEL_WIDTH = 150
VALUE_WIDTH = 130
PLOT_WIDTH = HALF_WIDTH - LABEL_WIDTH - VALUE_WIDTH


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 3, 4, 5, 6, 8 times a power of ten that is >= value: where an axis
    ends (its fifths are round numbers too)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(
        step * power for step in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0) if step * power >= value
    )


@dataclass(frozen=True)
class Tick:
    """A gridline of the value axis at `pos`, labelled."""

    pos: float
    label: str


@dataclass(frozen=True)
class Segment:
    """One series' part of a stacked column."""

    y: float
    height: float
    colour: str
    series: str
    value: str


@dataclass(frozen=True)
class Column:
    """One day's stacked column."""

    x: float
    width: float
    label: str
    total: str
    segments: list[Segment]


@dataclass
class StackedChart:
    """Spend per day stacked by model: columns, axis, legend and the table of numbers."""

    columns: list[Column]
    ticks: list[Tick]
    x_labels: list[Tick]
    legend: list[tuple[str, str]]
    summary: str
    table_head: list[str]
    table_rows: list[list[str]]
    width: int = WIDTH
    height: int = STACK_HEIGHT + PLOT_TOP + 28
    plot_left: int = PLOT_LEFT
    plot_bottom: float = PLOT_TOP + STACK_HEIGHT


def _groups(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    groups: list[Mapping[str, Any]] = report.get("groups", [])
    return groups


def _series(report: Mapping[str, Any], dimension: str) -> list[str]:
    """The series of a dimension, most spent first; beyond the palette they become OTHER."""
    spend: dict[str, int] = {}
    for group in _groups(report):
        name = str(group["key"][dimension])
        spend[name] = spend.get(name, 0) + int(group["cost_usd_micros"])
    ranked = sorted(spend, key=lambda name: (-spend[name], name))
    if len(ranked) > len(PALETTE):
        return [*ranked[: len(PALETTE) - 1], OTHER]
    return ranked


def spend_over_time_chart(report: Mapping[str, Any], days: Sequence[date]) -> StackedChart:
    """Spend per day stacked by model, from a report grouped by `day` and `model`; the table
    writes a model's unpriced tasks (`unpriced_tasks`) as such, and each day's total with them."""
    series = _series(report, "model")
    colours = {
        name: (OTHER_COLOUR if name == OTHER else PALETTE[n]) for n, name in enumerate(series)
    }
    cells: dict[tuple[str, str], int] = {}
    unpriced: dict[tuple[str, str], int] = {}
    for group in _groups(report):
        model = str(group["key"]["model"])
        name = model if model in colours else OTHER
        cell = (str(group["key"]["day"]), name)
        cells[cell] = cells.get(cell, 0) + int(group["cost_usd_micros"])
        unpriced[cell] = unpriced.get(cell, 0) + int(group.get("unpriced_tasks", 0))
    day_keys = [day.isoformat() for day in days]
    totals = [sum(cells.get((day, name), 0) for name in series) for day in day_keys]
    left_out = [sum(unpriced.get((day, name), 0) for name in series) for day in day_keys]
    top = nice_ceiling(max(totals, default=0))
    slot = (WIDTH - PLOT_LEFT - 8) / max(1, len(day_keys))
    columns = []
    for n, day in enumerate(day_keys):
        bottom = float(PLOT_TOP + STACK_HEIGHT)
        segments = []
        for name in series:
            value = cells.get((day, name), 0)
            if value <= 0:
                continue
            height = STACK_HEIGHT * value / top
            bottom -= height
            segments.append(Segment(bottom, height, colours[name], name, format_usd(value)))
        x = PLOT_LEFT + n * slot + slot * 0.1
        total = format_spend(totals[n], left_out[n])
        columns.append(Column(x, slot * 0.8, day, total, segments))
    ticks = [
        Tick(PLOT_TOP + STACK_HEIGHT * (1 - step / TICKS), format_usd(round(top * step / TICKS)))
        for step in range(TICKS + 1)
    ]
    every = max(1, math.ceil(len(day_keys) / 8))
    x_labels = [
        Tick(PLOT_LEFT + (n + 0.5) * slot, day[5:])
        for n, day in enumerate(day_keys)
        if n % every == 0
    ]
    busiest = max(range(len(totals)), key=lambda n: totals[n], default=None)
    summary = (
        f"Spend per day from {day_keys[0]} to {day_keys[-1]}, stacked by model; "
        f"total {format_spend(sum(totals), sum(left_out))}"
    )
    if busiest is not None and totals[busiest] > 0:
        summary += f"; the most on {day_keys[busiest]} ({format_usd(totals[busiest])})"
    rows = [
        [
            day,
            *(
                format_spend(cells.get((day, name), 0), unpriced.get((day, name), 0))
                for name in series
            ),
            format_spend(totals[n], left_out[n]),
        ]
        for n, day in enumerate(day_keys)
        if totals[n] > 0 or left_out[n] > 0
    ]
    return StackedChart(
        columns=columns,
        ticks=ticks,
        x_labels=x_labels,
        legend=[(colours[name], name) for name in series],
        summary=summary + ".",
        table_head=["Day", *series, "Total"],
        table_rows=rows,
    )


@dataclass(frozen=True)
class Bar:
    """One labelled horizontal bar, with the text written after it."""

    y: float
    label: str
    width: float
    value: str
    colour: str = PALETTE[0]


@dataclass
class BarChart:
    """Horizontal bars, one per row, with the table of the numbers behind them."""

    bars: list[Bar]
    summary: str
    table_head: list[str]
    table_rows: list[list[str]]
    legend: list[tuple[str, str]] = field(default_factory=list)
    width: int = HALF_WIDTH
    label_width: int = LABEL_WIDTH
    row_height: int = ROW_HEIGHT
    plot_width: int = PLOT_WIDTH
    height: int = field(init=False)

    def __post_init__(self) -> None:
        self.height = max(1, len(self.bars)) * self.row_height + 8


def _label(value: Any, noun: str) -> str:
    """A group's value as shown: events without the attribution are "(no project)"."""
    return f"(no {noun})" if value is None else str(value)


def _spend(group: Mapping[str, Any]) -> str:
    """A group's spend, saying the unpriced tasks it leaves out (`format_spend`)."""
    return format_spend(int(group["cost_usd_micros"]), int(group.get("unpriced_tasks", 0)))


def spend_by_chart(report: Mapping[str, Any], dimension: str, noun: str) -> BarChart:
    """Spend and task count per value of one dimension (task type, harness, project), most
    spent first."""
    groups = sorted(
        _groups(report),
        key=lambda g: (-int(g["cost_usd_micros"]), _label(g["key"][dimension], noun)),
    )
    top = max((int(g["cost_usd_micros"]) for g in groups), default=0) or 1
    plot = PLOT_WIDTH
    bars = [
        Bar(
            4 + n * ROW_HEIGHT,
            _label(g["key"][dimension], noun),
            plot * int(g["cost_usd_micros"]) / top,
            f"{_spend(g)} · {format_count(int(g['tasks']))} tasks",
        )
        for n, g in enumerate(groups)
    ]
    summary = f"Spend and tasks by {noun}: " + (
        "; ".join(f"{bar.label} {bar.value}" for bar in bars) if bars else "no tasks"
    )
    rows = [
        [
            _label(g["key"][dimension], noun),
            _spend(g),
            format_count(int(g["tasks"])),
        ]
        for g in groups
    ]
    return BarChart(bars, summary + ".", [noun.capitalize(), "Spend", "Tasks"], rows)


def rates_chart(report: Mapping[str, Any]) -> BarChart:
    """Success and gate-pass rates per model: two bars per model on a 0-100% scale."""
    groups = sorted(_groups(report), key=lambda g: (-int(g["tasks"]), str(g["key"]["model"])))
    plot = PLOT_WIDTH
    bars: list[Bar] = []
    for n, g in enumerate(groups):
        model = str(g["key"]["model"])
        success, gates = float(g["success_rate"]), float(g["gate_pass_rate"])
        y = 4 + 2 * n * ROW_HEIGHT
        # The model is written once, by its first bar; the bars' own titles name both.
        text = f"{format_percent(success)} success"
        bars.append(Bar(y, model, plot * success, text, SUCCESS_COLOUR))
        text = f"{format_percent(gates)} gates passed"
        bars.append(Bar(y + ROW_HEIGHT, "", plot * gates, text, GATES_COLOUR))
    rows = [
        [
            str(g["key"]["model"]),
            format_count(int(g["tasks"])),
            format_percent(float(g["success_rate"])),
            format_percent(float(g["gate_pass_rate"])),
        ]
        for g in groups
    ]
    summary = "Success and quality-gate pass rates by model: " + (
        "; ".join(f"{r[0]} {r[2]} success, {r[3]} gates passed" for r in rows)
        if rows
        else "no tasks"
    )
    head = ["Model", "Tasks", "Success rate", "Gate-pass rate"]
    legend = [(SUCCESS_COLOUR, "success rate"), (GATES_COLOUR, "gate-pass rate")]
    return BarChart(bars, summary + ".", head, rows, legend=legend)


@dataclass(frozen=True)
class RangeRow:
    """A p10-p90 span with its median tick, for one model and one kind of token."""

    y: float
    label: str  # "<model> input": the row's title
    shown: str  # written left of the row: the model, on its first row only
    x10: float
    x50: float
    x90: float
    value: str


@dataclass
class RangeChart:
    """Token p10-p90 spans per model (input and output), on one axis."""

    rows: list[RangeRow]
    ticks: list[Tick]
    summary: str
    table_head: list[str]
    table_rows: list[list[str]]
    width: int = HALF_WIDTH
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    row_height: int = ROW_HEIGHT
    height: int = field(init=False)

    def __post_init__(self) -> None:
        self.height = max(1, len(self.rows)) * self.row_height + 30


def token_range_chart(percentiles: Sequence[Mapping[str, Any]]) -> RangeChart:
    """Per model, the p10-p90 span and the median of input and of output tokens.

    Each entry: `model`, and `input_tokens` / `output_tokens` with `p10`, `p50`, `p90`.
    """
    top = nice_ceiling(
        max(
            (
                int(entry[kind]["p90"])
                for entry in percentiles
                for kind in ("input_tokens", "output_tokens")
            ),
            default=0,
        )
    )
    plot = PLOT_WIDTH
    rows: list[RangeRow] = []
    table: list[list[str]] = []
    for entry in percentiles:
        for kind, word in (("input_tokens", "input"), ("output_tokens", "output")):
            p = entry[kind]
            p10, p50, p90 = int(p["p10"]), int(p["p50"]), int(p["p90"])
            rows.append(
                RangeRow(
                    4 + len(rows) * ROW_HEIGHT,
                    f"{entry['model']} {word}",
                    str(entry["model"]) if word == "input" else "",
                    LABEL_WIDTH + plot * p10 / top,
                    LABEL_WIDTH + plot * p50 / top,
                    LABEL_WIDTH + plot * p90 / top,
                    f"{format_compact(p10)} to {format_compact(p90)}",
                )
            )
            table.append(
                [str(entry["model"]), word, format_count(p10), format_count(p50), format_count(p90)]
            )
    ticks = [
        Tick(LABEL_WIDTH + plot * step / TICKS, format_compact(round(top * step / TICKS)))
        for step in range(TICKS + 1)
    ]
    summary = "Tokens per task by model, p10 to p90 with the median: " + (
        "; ".join(f"{r[0]} {r[1]} {r[2]} to {r[4]} (median {r[3]})" for r in table)
        if table
        else "no tasks"
    )
    head = ["Model", "Tokens", "p10", "Median", "p90"]
    return RangeChart(rows, ticks, summary + ".", head, table)
