"""How the dashboard writes numbers: dollars from micro-dollars, counts, shares."""

from __future__ import annotations

from mosaicstack_telemetry_server.unpriced import cost_text

__all__ = ["format_compact", "format_count", "format_percent", "format_spend", "format_usd"]


def format_usd(micros: int) -> str:
    """`$1,234.57` from micro-dollars; cents hide sub-cent spend, so below $1 show 4 places."""
    dollars = micros / 1_000_000
    if 0 < abs(dollars) < 1:
        return f"${dollars:,.4f}"
    return f"${dollars:,.2f}"


def format_spend(micros: int, unpriced_tasks: int = 0) -> str:
    """Spend that leaves out unpriced tasks says so (`unpriced.py`): `$12.30 + unpriced (3
    tasks)`, or `unpriced (3 tasks)` when nothing was priced; `format_usd` without any."""
    return cost_text(micros, unpriced_tasks, format_usd)


def format_count(value: int) -> str:
    """`12,345`."""
    return f"{value:,}"


def format_percent(share: float) -> str:
    """`83.3%` from 0.8333."""
    return f"{share * 100:.1f}%"


def format_compact(value: int) -> str:
    """`125k`, `1.5M`: axis labels, where the exact count is in the table."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)
