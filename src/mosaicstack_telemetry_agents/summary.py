"""What a run did, counted by reason, with each kind of problem warned about once."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Summary"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class Summary:
    """Counts of an import, a hook run or a send: sessions, tasks, tokens, cost, skips."""

    sessions: int = 0
    tasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    # Schema 1.1 details, summed where the logs hold them (part of the input and output above).
    details: Counter[str] = field(default_factory=Counter)
    cost_usd_micros: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    clamped: Counter[str] = field(default_factory=Counter)
    unpriced: Counter[str] = field(default_factory=Counter)
    # Things worth telling that are not skips (e.g. Aider calls outside a launch, still counted).
    notes: Counter[str] = field(default_factory=Counter)
    warn: Callable[[str], None] = _stderr
    _warned: set[str] = field(default_factory=set)

    def cost_text(self) -> str:
        """The cost as a table shows it: unpriced requests said, never shown as a plain $0."""
        unpriced = sum(self.unpriced.values())
        if not unpriced:
            return f"${self.cost_usd_micros / 1_000_000:,.2f}"
        tail = f"unpriced ({unpriced:,} request{'s' if unpriced != 1 else ''})"
        if not self.cost_usd_micros:
            return tail
        return f"${self.cost_usd_micros / 1_000_000:,.2f} + {tail}"

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` things not turned into events, by reason."""
        if count:
            self.skipped[reason] += count

    def warn_once(self, kind: str, message: str) -> None:
        """Warn the first time a kind of problem is met; later ones are only counted."""
        if kind not in self._warned:
            self._warned.add(kind)
            self.warn(message)
