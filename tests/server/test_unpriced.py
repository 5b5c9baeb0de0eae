"""The unpriced rule (`unpriced.py`): which (model, provider) sums are unpriced, and the
wording a table gives them, against genai-prices' real price table."""

from __future__ import annotations

import pytest

from mosaicstack_telemetry_server.dashboard.formatting import format_usd
from mosaicstack_telemetry_server.unpriced import cost_text, has_price, unpriced_tasks


@pytest.mark.parametrize(
    ("provider", "model", "priced"),
    [
        ("anthropic", "claude-sonnet-4-5", True),
        ("openrouter", "claude-sonnet-4", True),  # found by its name alone
        ("anthropic", "gpt-5", True),  # served by another provider than the one named
        ("custom", "mystery-coder-9", False),
        ("anthropic", "mystery-coder-9", False),
    ],
)
def test_a_model_has_a_price_when_genai_prices_knows_one(
    provider: str, model: str, priced: bool
) -> None:
    assert has_price(provider, model) is priced


def test_a_lookup_is_made_once_per_model_and_provider() -> None:
    has_price("custom", "cached-once")
    before = has_price.cache_info()
    assert has_price("custom", "cached-once") is False
    after = has_price.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


@pytest.mark.parametrize(
    ("provider", "model", "tokens", "cost", "unpriced"),
    [
        ("custom", "mystery-coder-9", 10, 0, 4),
        ("custom", "mystery-coder-9", 0, 0, 0),  # no tokens: nothing to price
        ("custom", "mystery-coder-9", 10, 1, 0),  # the client priced it
        ("ollama", "mystery-coder-9", 10, 0, 0),  # local: free
        ("anthropic", "claude-sonnet-4-5", 10, 0, 0),  # a 0 the price list can tell is not
    ],
)
def test_a_sum_is_unpriced_when_it_has_tokens_no_cost_and_no_known_price(
    provider: str, model: str, tokens: int, cost: int, unpriced: int
) -> None:
    found = unpriced_tasks(
        provider=provider, model=model, tasks=4, tokens=tokens, cost_usd_micros=cost
    )
    assert found == unpriced


@pytest.mark.parametrize(
    ("cost", "unpriced", "text"),
    [
        (12_300_000, 0, "$12.30"),
        (0, 0, "$0.00"),
        (12_300_000, 14, "$12.30 + unpriced (14 tasks)"),
        (0, 1, "unpriced (1 task)"),
        (0, 1_500, "unpriced (1,500 tasks)"),
    ],
)
def test_a_cost_leaving_out_unpriced_tasks_says_so(cost: int, unpriced: int, text: str) -> None:
    assert cost_text(cost, unpriced, format_usd) == text
