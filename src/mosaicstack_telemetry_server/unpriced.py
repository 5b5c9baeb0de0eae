"""Unpriced usage: tokens of a model nobody could price, never shown as a plain $0.

An event must carry a cost. A client that found no price for its model (genai-prices knows
none, and the log stated none) stores the cost of what it could price: 0 when it priced
nothing (`mosaicstack_telemetry_agents/events.py`). Summed, such a model reads $0.00, like a
free local model. So a sum of one model through one provider is **unpriced** when its cost is
0, it has tokens, its provider is not a local one (Ollama: free), and genai-prices knows no
price for the model either (when it knows one, the 0 is the client's own figure, shown as is).

A table writes an unpriced sum "unpriced (3 tasks)", and a total that leaves some out
"$12.30 + unpriced (3 tasks)": the wording of the agents' import table
(`mosaicstack_telemetry_agents/summary.py`, `Summary.cost_text`), counting tasks where the
import counts requests. `mosaic-telemetry report` and the dashboard both apply this rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from mosaicstack_telemetry import Provider

__all__ = ["LOCAL_PROVIDERS", "cost_text", "has_price", "price_library", "unpriced_tasks"]

# Providers whose models run on the user's own machine: their 0 is the real cost.
LOCAL_PROVIDERS = frozenset({Provider.OLLAMA.value})
# genai-prices' ids of the providers an event may name, as the agents' hook looks prices up
# (`mosaicstack_telemetry_agents/pricing.py`); any other is found by the model's name alone.
_PRICE_PROVIDERS = frozenset({"anthropic", "openai", "google", "mistral"})
# (provider, model) pairs whose answer is kept: a lookup takes about 0.3 ms, and every page
# and report asks again for each row. Bounded: model names are what clients send.
_CACHED_LOOKUPS = 4096


@lru_cache(maxsize=1)
def price_library() -> tuple[Any, Any]:
    """genai-prices' `Usage` and `calc_price`, imported on first use: the library loads its
    whole price table (~0.3 s). The server's one loader of it (here and `otlp/pricing.py`)."""
    from genai_prices import Usage, calc_price

    return Usage, calc_price


@lru_cache(maxsize=_CACHED_LOOKUPS)
def has_price(provider: str, model: str) -> bool:
    """Whether genai-prices prices `model` through `provider`, or through any provider (a
    model served by another provider than the one named, as the agents' hook tries)."""
    usage_type, calc_price = price_library()
    usage = usage_type(input_tokens=1_000_000, output_tokens=1_000_000)
    for provider_id in (provider, None) if provider in _PRICE_PROVIDERS else (None,):
        try:
            calc_price(usage, model, provider_id=provider_id)
        except (LookupError, ValueError):
            continue
        return True
    return False


def unpriced_tasks(
    *, provider: str, model: str, tasks: int, tokens: int, cost_usd_micros: int
) -> int:
    """The tasks of one (model, provider) sum that are unpriced: all of them, or none."""
    if cost_usd_micros != 0 or tokens <= 0 or provider in LOCAL_PROVIDERS:
        return 0
    return 0 if has_price(provider, model) else tasks


def cost_text(cost_usd_micros: int, unpriced: int, usd: Callable[[int], str]) -> str:
    """A cost as a table writes it, `unpriced` of its tasks left out of it (`usd` writes
    micro-dollars): "$12.30", "$12.30 + unpriced (3 tasks)" or "unpriced (3 tasks)"."""
    if not unpriced:
        return usd(cost_usd_micros)
    tail = f"unpriced ({unpriced:,} task{'s' if unpriced != 1 else ''})"
    if not cost_usd_micros:
        return tail
    return f"{usd(cost_usd_micros)} + {tail}"
