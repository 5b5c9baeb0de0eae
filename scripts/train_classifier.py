"""Train the task-type model that `mosaicstack_telemetry_agents/classify_model.py` ships.

A multinomial logistic regression (scikit-learn's, L2, lbfgs: deterministic) over the hashed
words, word pairs and character n-grams of each labelled real or written prompt of
`tests/agents/data/prompts_labelled.jsonl`, plus the rules' answer as one feature. The blind
splits (`BLIND`) are never trained on: they measure it. The weights are written as int8 with one
scale to `src/mosaicstack_telemetry_agents/task_type_model.bin`.

    pip install scikit-learn
    MOSAIC_TELEMETRY_HARNESS_SAMPLES=../shared/harness-samples python scripts/train_classifier.py
    python scripts/train_classifier.py --cv   # also print the figures of other thresholds

The threshold (an answer is given when its probability reaches it) is chosen by cross-validation
grouped by owner: the lowest one at which the left-out owners' prompts are labelled right at
least `TARGET_PRECISION` of the time, counted on the splits no rule was written on. Needs
scikit-learn, which the project does not depend on.
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "agents"))
sys.path.insert(0, str(ROOT / "scripts"))

from _labelled_prompts import load  # noqa: E402
from classify_cv import group  # noqa: E402

from mosaicstack_telemetry_agents import classify, classify_model  # noqa: E402

Row = dict[str, Any]
OUT = ROOT / "src" / "mosaicstack_telemetry_agents" / "task_type_model.bin"
# Splits kept for measuring, never trained on.
BLIND = ("held-out-6",)
BITS = 16
# Inverse regularisation strength (scikit-learn's C), and the weight of the rules' answer.
C = 3.0
RULES_VALUE = 0.3
# The threshold is the lowest at which cross-validation gives at least this precision.
TARGET_PRECISION = 0.75
# Cross-validation deals the owners into this many groups.
FOLDS = 10
# The rules were written on the other splits' prompts, so there their answer (a feature) is
# right more often than on a stranger's: the threshold is chosen on these splits' prompts only,
# which no rule was written or changed on (`held-out-4` was measured blind, then left alone).
RULES_BLIND = ("held-out-4", "dev-5", "held-out-5", "dev-6")
THRESHOLDS = tuple(round(0.25 + 0.01 * step, 2) for step in range(46))


def _matrix(rows: Sequence[Row], answers: Sequence[str]) -> Any:
    from scipy.sparse import csr_matrix

    indices: list[int] = []
    values: list[float] = []
    pointers = [0]
    for row, answer in zip(rows, answers, strict=True):
        buckets = classify_model.features(row["text"], BITS)
        value = 1 / math.sqrt(len(buckets)) if buckets else 0.0
        indices += [*buckets, classify_model.rules_feature(answer, BITS)]
        values += [value] * len(buckets) + [RULES_VALUE]
        pointers.append(len(indices))
    return csr_matrix((values, indices, pointers), shape=(len(rows), 1 << BITS))


def _fit(rows: Sequence[Row], answers: Sequence[str]) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=5000)
    model.fit(_matrix(rows, answers), [row["label"] for row in rows])
    return model


def _quantised(fitted: Any, threshold: float) -> classify_model.Model:
    import numpy as np

    coef = np.asarray(fitted.coef_, dtype=np.float64).T  # buckets x labels
    scale = float(np.abs(coef).max()) / 127 or 1.0
    weights = np.clip(np.rint(coef / scale), -127, 127).astype(np.int8)
    return classify_model.Model(
        bits=BITS,
        head=classify_model.HEAD_CHARS,
        threshold=threshold,
        rules_value=RULES_VALUE,
        labels=tuple(str(label) for label in fitted.classes_),
        biases=tuple(float(bias) for bias in fitted.intercept_),
        scale=scale,
        weights=weights.tobytes(),
    )


def cross_validated(rows: Sequence[Row], answers: Sequence[str]) -> list[tuple[Row, str, float]]:
    """Each real prompt's answer and probability, by a model trained without its owner's prompts.

    Owners are dealt into `FOLDS` groups by a hash of their name; each group is answered by a
    model trained on the others (and on the written prompts, which are never answered).
    `answers` are the rules' answers to `rows`, in order.
    """
    folds = [_fold(row) for row in rows]
    out: list[tuple[Row, str, float]] = []
    for fold in range(FOLDS):
        train = [i for i, other in enumerate(folds) if other != fold]
        test = [i for i, other in enumerate(folds) if other == fold]
        fitted = _fit([rows[i] for i in train], [answers[i] for i in train])
        probs = fitted.predict_proba(_matrix([rows[i] for i in test], [answers[i] for i in test]))
        for row, row_probs in zip((rows[i] for i in test), probs, strict=True):
            best = int(row_probs.argmax())
            out.append((row, str(fitted.classes_[best]), float(row_probs[best])))
    return out


def _fold(row: Row) -> int | None:
    owner = group(row)
    return None if owner == "written" else zlib.crc32(owner.encode()) % FOLDS


def figures(answered: Sequence[tuple[Row, str, float]], threshold: float) -> tuple[float, float]:
    """(precision, share labelled) when answers below `threshold` are `unknown`."""
    labelled = [(row, got) for row, got, p in answered if got != "unknown" and p >= threshold]
    right = sum(got == row["label"] for row, got in labelled)
    return (right / len(labelled) if labelled else 0.0, len(labelled) / len(answered))


def choose_threshold(answered: Sequence[tuple[Row, str, float]]) -> float:
    """The lowest threshold whose cross-validated precision reaches `TARGET_PRECISION`."""
    for threshold in THRESHOLDS:
        if figures(answered, threshold)[0] >= TARGET_PRECISION:
            return threshold
    return THRESHOLDS[-1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", action="store_true", help="print the cross-validated figures")
    args = parser.parse_args(argv)
    labelled = load()
    if labelled.unresolved:  # a model trained on fewer prompts must not replace the shipped one
        raise SystemExit(
            f"{labelled.unresolved} labelled prompts quote harness samples that were not found: "
            "set MOSAIC_TELEMETRY_HARNESS_SAMPLES to the harness-samples folder"
        )
    rows = [row for row in labelled.rows if row["split"] not in BLIND]
    answers = [classify.rules_task_type(row["text"]) for row in rows]  # a feature: read once
    answered = [item for item in cross_validated(rows, answers) if item[0]["split"] in RULES_BLIND]
    threshold = choose_threshold(answered)
    if args.cv:
        for candidate in THRESHOLDS[::5]:
            precision, share = figures(answered, candidate)
            print(f"p >= {candidate:.2f}: {precision:.1%} right, {share:.1%} labelled")
    precision, share = figures(answered, threshold)
    print(
        f"threshold {threshold:.2f}: {precision:.1%} right, {share:.1%} labelled "
        f"(left-out owners' prompts of {', '.join(RULES_BLIND)}: {len(answered)})"
    )
    fitted = _fit(rows, answers)
    OUT.write_bytes(_quantised(fitted, threshold).to_bytes())
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size:,} bytes, {len(rows)} prompts)")


if __name__ == "__main__":
    main()
