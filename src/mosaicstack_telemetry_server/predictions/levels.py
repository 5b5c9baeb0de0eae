"""The fallback levels of the contract, written once: which dimensions each level keeps.

Level 0 keeps every dimension (exact match); each next level drops more, down to level 3,
the task type alone. `statistics` groups events by them, `fallback` builds the query's
chain from them, `widening` knows from them what an answer at a level leaves unknown.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DIMENSIONS", "FALLBACK_LEVELS", "GROUP_DIMENSIONS", "kept_dimensions"]

# The dimension names of `dimensions_matched`, in the query's order.
DIMENSIONS: Final = ("task_type", "model", "provider", "complexity")
# The dimensions a group key holds besides its task type, in stats-key order.
GROUP_DIMENSIONS: Final = ("model", "provider", "complexity")

# Per level: the dimensions it keeps (the task type is always kept).
FALLBACK_LEVELS: Final = (
    frozenset(DIMENSIONS),
    frozenset({"task_type", "model", "complexity"}),
    frozenset({"task_type", "model"}),
    frozenset({"task_type"}),
)


def kept_dimensions(level: int) -> tuple[bool, bool, bool]:
    """Whether `level` keeps model, provider and complexity (in `GROUP_DIMENSIONS` order)."""
    kept = FALLBACK_LEVELS[level]
    model, provider, complexity = (d in kept for d in GROUP_DIMENSIONS)
    return model, provider, complexity
