"""Cost of a request, from `genai-prices` (a maintained price list), in USD.

Cache writes are priced as writes (5-minute and 1-hour apart) and cache reads as reads. A model
with no known price costs 0, and the caller warns once per model.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from mosaicstack_telemetry_agents.tasks import Request

__all__ = ["price_usd"]


@lru_cache(maxsize=1)
def _library() -> tuple[object, object]:
    # Imported on first use: the library loads its whole price table (~0.3 s).
    from genai_prices import Usage, calc_price

    return Usage, calc_price


def price_usd(request: Request, provider: str) -> Decimal | None:
    """The request's cost, or None when `genai-prices` knows no price for the model."""
    if request.cost_usd is not None:
        return Decimal(str(request.cost_usd))
    usage_type, calc_price = _library()
    writes = request.cache_write_5m_tokens + request.cache_write_1h_tokens
    usage = usage_type(  # type: ignore[operator]
        input_tokens=request.total_input_tokens,
        cache_write_tokens=writes,
        cache_write_1h_tokens=request.cache_write_1h_tokens,
        cache_read_tokens=request.cache_read_tokens,
        output_tokens=request.output_tokens,
    )
    provider_id = provider if provider in ("anthropic", "openai", "google", "mistral") else None
    try:
        result = calc_price(usage, request.model, provider_id=provider_id)  # type: ignore[operator]
    except (LookupError, ValueError):
        if provider_id is None:
            return _fallback(request)
        try:  # a model served by another provider than the one the harness names
            result = calc_price(usage, request.model)  # type: ignore[operator]
        except (LookupError, ValueError):
            return _fallback(request)
    total: Decimal = result.total_price
    return total


def _fallback(request: Request) -> Decimal | None:
    if request.fallback_cost_usd is None:
        return None
    return Decimal(str(request.fallback_cost_usd))
