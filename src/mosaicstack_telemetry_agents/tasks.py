"""A task as the harness modules read it from a log: its API requests, its span, its outcome.

Harness modules turn lines into `Task`s; `events.py` turns a `Task` into a `TaskCompletionEvent`.
Between the two sits nothing format-specific, so every harness is priced and clamped the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["CACHE_READ", "CACHE_WRITE", "REASONING", "Request", "Task"]

CACHE_READ = "cache_read"
CACHE_WRITE = "cache_write"
REASONING = "reasoning"


@dataclass(frozen=True)
class Request:
    """One API request, counted once: its model and token counts.

    `input_tokens` is the uncached input alone; the cache counts are separate, as Anthropic
    reports them. `cost_usd` is set where the log's own cost is better than pricing the tokens
    (Aider, whose log has no cache breakdown).
    """

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    # Part of `output_tokens`, where the log breaks it out (Codex, OpenCode).
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    # The log's own cost, used only when the price list does not know the model (OpenCode).
    fallback_cost_usd: float | None = None
    # Identity within the session (e.g. message id + request id) and when it was logged: what
    # lets a hook report only the requests it has not reported yet.
    key: str = ""
    at: datetime | None = None

    @property
    def total_input_tokens(self) -> int:
        """Uncached + cache-creation + cache-read input: everything the model read."""
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )


@dataclass
class Task:
    """One task: a turn of a session where the log has turns, else the whole session.

    `key` tells the task apart within its session (e.g. the prompt's line id) and, with
    `session_id` and `part`, derives the event id, so a rerun never counts a task twice. `part`
    is above 0 only for work that went on after an earlier part was reported.
    """

    harness: str
    provider: str
    session_id: str
    key: str
    started: datetime | None = None
    ended: datetime | None = None
    requests: list[Request] = field(default_factory=list)
    interrupted: bool = False
    failed: bool = False
    compactions: int = 0
    context_window: int = 200_000
    part: int = 0
    # What the prompt that started the task asked for (`classify.py`): the event's task type when
    # none is configured. The prompt itself is not kept.
    prompt_type: str = "unknown"
    # Where the work was done, as the log says: the working directory (its git remote gives the
    # project), a project already read from the log (Codex's remote URL), and the git branch.
    cwd: str | None = None
    project: str | None = None
    branch: str | None = None
    # The token details the harness's log holds (CACHE_READ, ...): only those are reported, so
    # a log without a cache breakdown never claims 0 cache reads.
    token_details: frozenset[str] = frozenset()

    def see(self, when: datetime | None) -> None:
        """Widen the task's span to include `when`."""
        if when is None:
            return
        if self.started is None or when < self.started:
            self.started = when
        if self.ended is None or when > self.ended:
            self.ended = when

    @property
    def outcome(self) -> str:
        """`failure` when it ended on an API error, `partial` when interrupted, else `success`."""
        if self.failed:
            return "failure"
        return "partial" if self.interrupted else "success"

    @property
    def model(self) -> str:
        """The model that produced the most output (the first seen among equals)."""
        output: Counter[str] = Counter()
        for request in self.requests:
            output[request.model] += request.output_tokens
        return output.most_common(1)[0][0] if output else "unknown"

    def detail(self, name: str) -> int | None:
        """The task's sum of a token detail, or None when the log does not hold it."""
        if name not in self.token_details:
            return None
        if name == CACHE_READ:
            return sum(r.cache_read_tokens for r in self.requests)
        if name == CACHE_WRITE:
            return sum(r.cache_write_5m_tokens + r.cache_write_1h_tokens for r in self.requests)
        return sum(r.reasoning_tokens for r in self.requests)

    @property
    def duration_ms(self) -> int:
        """First to last timestamp of the task."""
        if self.started is None or self.ended is None:
            return 0
        return int((self.ended - self.started).total_seconds() * 1000)

    @property
    def context_utilization(self) -> float:
        """The last request's input over the context window (an assumed window, see docs)."""
        if not self.requests or self.context_window <= 0:
            return 0.0
        return min(1.0, self.requests[-1].total_input_tokens / self.context_window)
