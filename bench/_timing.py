"""Timing helpers shared by the suites: batches of calls, percentiles, a result row."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Result", "deadline_wait", "percentile", "time_batches"]


@dataclass(frozen=True, slots=True)
class Result:
    """One measured number, as a row of the final table."""

    suite: str
    name: str
    value: float
    unit: str
    note: str = ""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def time_batches(
    call: Callable[[int], object],
    *,
    rounds: int,
    batch: int,
    between: Callable[[], object] | None = None,
) -> list[float]:
    """Nanoseconds per call of `call(i)`, one mean per batch of `batch` calls.

    Timing a whole batch with perf_counter_ns keeps the clock's own cost (~50 ns) out of
    sub-microsecond calls; `between` runs untimed after each batch (e.g. wait for a drain).
    """
    per_call: list[float] = []
    index = 0
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(batch):
            call(index)
            index += 1
        per_call.append((time.perf_counter_ns() - started) / batch)
        if between is not None:
            between()
    return per_call


def deadline_wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.001)
