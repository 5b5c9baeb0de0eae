"""The cost of a call whose agent sends none (Codex, Gemini CLI), from `genai-prices`.

As the agents' hook prices them (`mosaicstack_telemetry_agents/pricing.py`): the whole input,
the cache reads apart, the output. A model without a known price costs 0.
"""

from __future__ import annotations

from decimal import Decimal

from mosaicstack_telemetry_server.otlp.calls import Usage
from mosaicstack_telemetry_server.unpriced import price_library

__all__ = ["price_usd"]

# genai-prices' provider ids for the providers a model name tells.
_PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "google": "google"}


def price_usd(usage: Usage, provider: str) -> Decimal:
    """The call's cost: the agent's own figure, else the price list's, else 0."""
    if usage.cost_usd is not None:
        return usage.cost_usd
    price_usage, calc_price = price_library()
    request = price_usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
    )
    try:
        result = calc_price(request, usage.model, provider_id=_PROVIDERS.get(provider))
    except (LookupError, ValueError):
        return Decimal(0)
    total: Decimal = result.total_price
    return max(total, Decimal(0))
