"""Predictions for a model never seen: p10-p90 coverage leaving one model out (issue 17).

`python -m bench.prediction_coverage [--against REF] [--seed N] [--json PATH]`

The fleet, the folds and the scoring are the calibration test's
(`tests/server/_fleet_calibration.py`): six models whose per-task input-token medians differ
up to x30, log-normal sigma 1.0-1.5, one model with 40% of the events, four task types (two
run by only two or three models), each model held out in turn and asked for through a real
SQLite file and the prediction service. Per confidence, fallback level, task type and
held-out model: coverage of fresh outcomes by p10-p90 (goal 65-90%) and the mean interval
score of the central 80% interval in natural-log tokens (lower is better).

`--against REF` also runs the same evaluation on the server code of a git ref (`git archive`
of its `src/` on the path of a child process), for a side-by-side table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_ORDER = ("confidence", "level", "unseen model in", "held-out model")


def _scores(seed: int) -> dict[str, dict[str, float]]:
    """This interpreter's server code, evaluated: row label -> figures."""
    sys.path.insert(0, str(_ROOT / "tests" / "server"))
    from _fleet_calibration import evaluate

    with tempfile.TemporaryDirectory() as workdir:
        scores = evaluate(Path(workdir), seed)
    rows = {}
    for (kind, name), score in sorted(
        scores.items(), key=lambda item: (_ORDER.index(item[0][0]), str(item[0][1]))
    ):
        rows[f"{kind} {name}"] = {
            "answers": score.answers,
            "in_cov": score.coverage("input"),
            "in_is": score.interval_score("input"),
            "out_cov": score.coverage("output"),
            "out_is": score.interval_score("output"),
        }
    return rows


def _scores_of(ref: str, seed: int) -> dict[str, dict[str, float]]:
    """The same evaluation with the server code of git `ref`, in a child process."""
    archive = subprocess.run(  # nosec B603 B607
        ["git", "archive", ref, "src"], cwd=_ROOT, check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory() as tree:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        env = {**os.environ, "PYTHONPATH": str(Path(tree) / "src")}
        out = subprocess.run(  # nosec B603
            [sys.executable, "-m", "bench.prediction_coverage", "--seed", str(seed), "--raw"],
            cwd=_ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    rows: dict[str, dict[str, float]] = json.loads(out)
    return rows


def _table(columns: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(columns)
    head = "| | answers | " + " | ".join(
        f"{n}: input cov | {n}: input IS | {n}: output cov | {n}: output IS" for n in names
    )
    lines = [head + " |", "|" + "---|" * (2 + 4 * len(names))]
    for label, first in next(iter(columns.values())).items():
        cells = [label, str(int(first["answers"]))]
        for name in names:
            row = columns[name].get(label)
            if row is None:
                cells += ["-"] * 4
                continue
            cells += [
                f"{row['in_cov']:.0%}",
                f"{row['in_is']:.2f}",
                f"{row['out_cov']:.0%}",
                f"{row['out_is']:.2f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, and print a markdown table (or, with --raw, the figures as JSON)."""
    parser = argparse.ArgumentParser(prog="python -m bench.prediction_coverage")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--against", help="git ref whose server code to evaluate beside")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.raw:
        print(json.dumps(_scores(args.seed)))
        return 0
    columns = {}
    if args.against:
        columns[args.against] = _scores_of(args.against, args.seed)
    columns["this tree"] = _scores(args.seed)
    print(_table(columns))
    if args.json:
        args.json.write_text(json.dumps(columns, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
