"""The labelled prompts (`data/prompts_labelled.jsonl`), with the quoted ones read from the samples.

Rows taken from the Claude Code transcripts in `harness-samples` hold no text: the samples may
not be copied into the repository. Such a row names the sample (`sample`, relative to the samples
folder), the prompt's line (`uuid`) and the SHA-256 of its text; the text is read from the sample
here, and a changed sample fails loudly rather than measuring the classifier on other words.
Where the samples are absent those rows are left out, with a warning that says so.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _agents_helpers import SAMPLES

__all__ = ["DATA", "Labelled", "load", "quoted_text"]

DATA = Path(__file__).with_name("data") / "prompts_labelled.jsonl"


@dataclass(frozen=True)
class Labelled:
    """The rows with their text, and the count of rows left out for want of the samples."""

    rows: list[dict[str, Any]]
    unresolved: int


def quoted_text(row: dict[str, Any], samples: Path = SAMPLES) -> str:
    """The prompt a row quotes: its line's typed text, as the harness module reads it."""
    path = samples / row["sample"]
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(line)
        if record.get("uuid") == row["uuid"] and record.get("type") == "user":
            text = _typed(record["message"]["content"])
            if hashlib.sha256(text.encode()).hexdigest() != row["sha256"]:
                raise AssertionError(f"{row['sample']} {row['uuid']}: text changed since labelled")
            return text
    raise AssertionError(f"{row['sample']}: no user line {row['uuid']}")


def _typed(content: object) -> str:
    # As `harnesses/claude_code.py` gives a prompt to the classifier: its text blocks, one a line.
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")


def load(samples: Path = SAMPLES) -> Labelled:
    """Every row with a `text`; quoting rows resolved, or left out when the samples are absent."""
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines()]
    present = samples.is_dir()
    resolved, unresolved = [], 0
    for row in rows:
        if "sample" in row:
            if not present:
                unresolved += 1
                continue
            row = {**row, "text": quoted_text(row, samples)}
        resolved.append(row)
    if unresolved:
        warnings.warn(
            f"{unresolved} labelled prompts left out: they quote harness samples, not found at "
            f"{samples} (CI has them beside the checkout); the figures are on the rest",
            stacklevel=2,
        )
    return Labelled(resolved, unresolved)
