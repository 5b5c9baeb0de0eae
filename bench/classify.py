"""The prompt's task type (`classify.py`: the model and the rules) as the hook runs it.

In process, on prompts of each kind.

The hook's budget for it is 20 ms. Timed: a short prompt, a long English request, one with
sentences and file names (which are blanked before the cues are read), a prompt that is all paste
(read whole, up to the cut), 1 MB of pasted log (cut to `MAX_PROMPT_CHARS`), a French and a
Chinese prompt (read by the cues of their languages) and one that holds a cue of every task type.
Then how often it is right on `held-out-6` (tests/agents/data/README.md; real prompts, drawn and
labelled blind, measured once with the model frozen): precision on the prompts it labels, the
share it labels, and how often it abstains. `python -m bench --only classify`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench._timing import Result, percentile
from mosaicstack_telemetry_agents.classify import MAX_PROMPT_CHARS, prompt_task_type

__all__ = ["run"]

# The hand-labelled prompts; held-out-6's rows all carry their text.
_LABELLED = (
    Path(__file__).resolve().parents[1] / "tests" / "agents" / "data" / "prompts_labelled.jsonl"
)
_HELD_OUT = "held-out-6"

_CUES = (
    "refactor fix the bug, write unit tests, review the pr, update the readme, configure the ci "
    "dockerfile, plan the architecture, security audit for xss, implement the endpoint, explain "
)
_PROMPTS = {
    "short (`fix the login bug`)": "fix the login bug",
    "long request (1,900 characters, one paragraph)": (
        "Now I want you to add pagination to the orders endpoint, keep the cursor stable and " * 23
    ),
    "long request with sentences and file names (1,800 characters)": (
        "Please move the cursor logic out of src/orders/api.py. Keep app/pagination.py stable, "
        "and check tests/test_orders.py still passes. "
    )
    * 14,
    "all paste (a 2,000-character traceback)": (
        'File "app/main.py", line 12, in handler\n  value = compute(x)\nKeyError: x\n' * 30
    ),
    "1 MB of pasted log after the request": "fix this crash:\n" + "ERROR worker died\n" * 58_000,
    "French (cues of its language)": (
        "Mon appli plante au démarrage, peux-tu regarder pourquoi ? " * 30
    ),
    "Chinese, 2,000 characters (cues of its language)": (
        ("请帮我修复登录页面的报错 点击按钮之后没有任何反应 控制台显示错误。" * 70)[
            :MAX_PROMPT_CHARS
        ]
    ),
    "a cue of every task type, 2,000 characters": (_CUES * 10)[:MAX_PROMPT_CHARS],
}


def _micros(text: str, rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU µs of each call: on a shared machine the wall clock's tail is the
    neighbours' (a preempted call), the CPU time is the classifier's own."""
    wall, cpu = [], []
    for _ in range(rounds):
        started, used = time.perf_counter_ns(), time.thread_time_ns()
        prompt_task_type(text)
        cpu.append((time.thread_time_ns() - used) / 1000)
        wall.append((time.perf_counter_ns() - started) / 1000)
    return wall, cpu


# What a hook process pays: importing the module and one call (compiling the cues it needs).
# The hook has imported these modules before (its own work), so they are imported first here.
# A prompt in another language also imports the cues of the other languages.
_FRESH = (
    "import contextlib, datetime, json, pathlib, re, subprocess, time, typing\n"
    "wall, cpu = time.perf_counter_ns(), time.thread_time_ns()\n"
    "from mosaicstack_telemetry_agents.classify import prompt_task_type\n"
    "prompt_task_type({prompt})\n"
    "print((time.perf_counter_ns() - wall) / 1000, (time.thread_time_ns() - cpu) / 1000)\n"
)
_FRESH_PROMPTS = {
    "": "'fix this crash:' + chr(10) + 'ERROR worker died' * 100",
    ", a Chinese prompt": "'请帮我修复登录页面的报错 点击按钮之后没有任何反应。' * 3",
}


def _fresh(rounds: int) -> list[Result]:
    results = []
    for about, prompt in _FRESH_PROMPTS.items():
        wall, cpu = [], []
        for _ in range(rounds):
            out = subprocess.run(
                [sys.executable, "-c", _FRESH.format(prompt=prompt)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            wall.append(float(out[0]))
            cpu.append(float(out[1]))
        note = f"p95 {percentile(wall, 95):,.0f} µs; CPU median {percentile(cpu, 50):,.0f} µs"
        name = f"new process: import + one call (the hook's cost){about}"
        results.append(Result("classify", name, percentile(wall, 50), "µs (median)", note))
    return results


def _held_out() -> list[Result]:
    """Precision on the prompts labelled, the share labelled and the share left `unknown`."""
    lines = _LABELLED.read_text("utf-8").splitlines()
    rows = [row for row in map(json.loads, lines) if row["split"] == _HELD_OUT]
    answers = [(prompt_task_type(row["text"]), row["label"]) for row in rows]
    labelled = [(answer, label) for answer, label in answers if answer != "unknown"]
    right = sum(answer == label for answer, label in labelled)
    repos = len({row["source"].partition(":")[2].partition("@")[0] for row in rows})
    about = f"{_HELD_OUT}: {len(rows)} real prompts, {repos} repositories"
    return [
        Result(
            "classify",
            f"{about}: right of those labelled",
            100 * right / len(labelled),
            "%",
            f"{right} of {len(labelled)}; goal 75%",
        ),
        Result(
            "classify",
            f"{about}: labelled",
            100 * len(labelled) / len(rows),
            "%",
            f"{len(labelled)} of {len(rows)}; goal 40%",
        ),
        Result(
            "classify",
            f"{about}: abstained (unknown)",
            100 - 100 * len(labelled) / len(rows),
            "%",
            f"{len(rows) - len(labelled)} of {len(rows)}",
        ),
    ]


def run(quick: bool) -> list[Result]:
    """Median and p99 of `rounds` calls per prompt, after one warm-up call (regex compile)."""
    rounds = 200 if quick else 2000
    results = []
    for name, text in _PROMPTS.items():
        prompt_task_type(text)
        wall, cpu = _micros(text, rounds)
        note = (
            f"p99 {percentile(wall, 99):,.0f} µs; CPU median {percentile(cpu, 50):,.0f}, "
            f"p99 {percentile(cpu, 99):,.0f} µs; answer {prompt_task_type(text)}"
        )
        results.append(Result("classify", name, percentile(wall, 50), "µs (median)", note))
    return [*results, *_fresh(10 if quick else 40), *_held_out()]
