"""How well the task-type classifier's cues may do on strangers' prompts: grouped cross-validation.

The rules of `mosaicstack_telemetry_agents/classify.py` were written by reading every labelled
prompt (tests/agents/data/README.md), so their figures on those prompts flatter them, and a rule
written by hand cannot be cross-validated. What can be: the same cues with their weights learned
instead of chosen, trained without one owner's prompts and measured on that owner's, for each
owner in turn (leave one owner out; an owner's repositories are one group, the written prompts
another, trained on and never measured). That estimates what weighting the cues well is worth
on people and repositories never seen; the cues themselves were still chosen on all the data.

Also measured the same way, as what a model with no hand-written cues gives: multinomial naive
Bayes over the words, word pairs and Chinese characters of the request.

`MOSAIC_TELEMETRY_HARNESS_SAMPLES=../shared/harness-samples python scripts/classify_cv.py`.
Deterministic: the same data give the same figures. Nothing here is shipped or used at run time.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "agents"))

from _labelled_prompts import load  # noqa: E402

from mosaicstack_telemetry_agents import classify, classify_languages  # noqa: E402

Row = dict[str, Any]
# Learned weights: stochastic gradient descent on the multinomial logistic loss, fixed seed.
_EPOCHS, _RATE, _L2, _SEED = 60, 0.3, 0.01, 0
# A learned answer is given when its probability reaches this; lower means `unknown`.
_THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")


def group(row: Row) -> str:
    """Whose prompt it is: the repository's owner, the transcript's project, or `written`."""
    source = str(row["source"])
    if source.startswith("written"):
        return "written"
    if source.startswith("harness-samples/"):
        return source.split("/")[2]
    return source.partition(":")[2].partition("@")[0].partition("/")[0]


def english(row: Row) -> bool:
    """Whether the prompt is one the English cues read (the classifier's own language check)."""
    return row.get("language", "en") == "en" and not classify._foreign(row["text"].lower())


def cue_hits(text: str) -> frozenset[str]:
    """Which of the classifier's cues the prompt holds, read as the classifier reads it."""
    cleaned = classify._TAGS.sub(" ", text[: classify.MAX_PROMPT_CHARS]).lower().strip()
    attached = classify._ATTACHED.match(cleaned)
    cleaned = cleaned[attached.end() :] if attached else cleaned
    if classify._foreign(cleaned):
        head = cleaned[: classify._head_end(cleaned)]
        cues = (*classify_languages._CUES, *classify_languages._LOANWORDS)
        return frozenset(
            f"foreign{index}"
            for index, (_, _, stems) in enumerate(cues)
            if any(classify_languages._found(stem, head) for stem in stems.split("|"))
        ) | {"foreign"}
    named = classify._without_names(cleaned)
    if named is None or classify._command(named):
        return frozenset({"no request"})
    end = classify._head_end(named)
    lead = classify._LEAD.match(named, 0, end)
    start = lead.end() if lead else 0
    hits = set()
    for index, (_, _, _, source) in enumerate(classify._CUES):
        pattern = classify._compiled(source)
        match = pattern.search(named, 0, end)
        if match is None:
            continue
        hits.add(f"cue{index}")
        opens = match.start() <= start and pattern.match(named, start, end) is not None
        if opens and classify._OPENING_VERB.match(named, start, end) is not None:
            hits.add(f"opens{index}")
    if not hits:  # all paste: its debugging cues, as the classifier reads it
        for index, (kind, _, _, source) in enumerate(classify._CUES):
            if kind == "debugging" and classify._compiled(source).search(named):
                hits.add(f"pasted{index}")
    return frozenset(hits)


def words(text: str) -> list[str]:
    """The request's words, word pairs and Chinese characters and pairs, for naive Bayes."""
    head = classify._TAGS.sub(" ", text[: classify.MAX_PROMPT_CHARS]).lower()[:400]
    latin = [word for word in re.findall(r"[^\W\d_]+", head) if not _CJK_RUN.fullmatch(word)]
    found = [f"w:{word}" for word in latin] + [f"b:{a}_{b}" for a, b in itertools.pairwise(latin)]
    for run in _CJK_RUN.findall(head):
        found += [f"c:{char}" for char in run] + [f"c:{run[i : i + 2]}" for i in range(len(run))]
    return found


Predict = Callable[[Row], tuple[str, float]]


def logistic(train: list[Row], features: dict[int, frozenset[str]], labels: list[str]) -> Predict:
    """Multinomial logistic regression on the cue hits, trained by seeded SGD."""
    weights: defaultdict[str, list[float]] = defaultdict(lambda: [0.0] * len(labels))
    data, rng = list(train), random.Random(_SEED)  # noqa: S311 (a seed, for the same figures)
    for _ in range(_EPOCHS):
        rng.shuffle(data)
        for row in data:
            hits = features[id(row)] | {"bias"}
            probs = _softmax([sum(weights[f][k] for f in hits) for k in range(len(labels))])
            truth = labels.index(row["label"])
            for k, prob in enumerate(probs):
                step = prob - (k == truth)
                for f in hits:
                    weights[f][k] -= _RATE * (step + _L2 * weights[f][k])

    def predict(row: Row) -> tuple[str, float]:
        hits = [f for f in features[id(row)] | {"bias"} if f in weights]
        probs = _softmax([sum(weights[f][k] for f in hits) for k in range(len(labels))])
        best = max(range(len(labels)), key=probs.__getitem__)
        return labels[best], probs[best]

    return predict


def naive_bayes(train: list[Row], features: dict[int, list[str]], labels: list[str]) -> Predict:
    """Multinomial naive Bayes (each feature once a prompt, add-½ smoothing)."""
    counts = {label: Counter[str]() for label in labels}
    prior = Counter(row["label"] for row in train)
    for row in train:
        counts[row["label"]].update(set(features[id(row)]))
    vocabulary = set().union(*counts.values())
    totals = {label: sum(counts[label].values()) + 0.5 * len(vocabulary) for label in labels}

    def predict(row: Row) -> tuple[str, float]:
        present = [f for f in set(features[id(row)]) if f in vocabulary]
        logs = [
            math.log((prior[label] + 1) / (len(train) + len(labels)))
            + sum(math.log((counts[label][f] + 0.5) / totals[label]) for f in present)
            for label in labels
        ]
        probs = _softmax(logs)
        best = max(range(len(labels)), key=probs.__getitem__)
        return labels[best], probs[best]

    return predict


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(value - top) for value in values]
    total = sum(exps)
    return [value / total for value in exps]


def _figures(pairs: Iterable[tuple[str, str]]) -> str:
    """(answer, label) pairs as "right/labelled = precision, labelled share of n"."""
    pairs = list(pairs)
    labelled = [(got, truth) for got, truth in pairs if got != "unknown"]
    right = sum(got == truth for got, truth in labelled)
    precision = right / len(labelled) if labelled else 0.0
    return (
        f"{right}/{len(labelled)} right ({precision:.1%}), "
        f"labelled {len(labelled) / len(pairs):.1%} of {len(pairs)}"
    )


def _report(name: str, rows: list[Row], answer: Callable[[Row], str]) -> None:
    parts = {
        "all": rows,
        "English": [row for row in rows if english(row)],
        "other languages": [row for row in rows if not english(row)],
        "held-out-3": [row for row in rows if row["split"] == "held-out-3"],
    }
    print(name)
    for part, chosen in parts.items():
        print(f"  {part:16} {_figures((answer(row), row['label']) for row in chosen)}")


def main() -> None:
    rows = load().rows
    real = [row for row in rows if group(row) != "written"]
    labels = sorted({row["label"] for row in rows})
    _report("rules as shipped (not cross-validated: written on these prompts)", real, _rules)
    models: dict[str, tuple[Callable[..., Predict], dict[int, Any]]] = {
        "learned weights on the cues": (logistic, {id(r): cue_hits(r["text"]) for r in rows}),
        "naive Bayes on words": (naive_bayes, {id(r): words(r["text"]) for r in rows}),
    }
    for name, (fit, features) in models.items():
        out: dict[int, tuple[str, float]] = {}
        for owner in sorted({group(row) for row in real}):
            predict = fit([row for row in rows if group(row) != owner], features, labels)
            out.update((id(row), predict(row)) for row in real if group(row) == owner)
        for threshold in _THRESHOLDS:
            _report(
                f"{name}, leave one owner out, answer when p >= {threshold}",
                real,
                lambda row, t=threshold, o=out: o[id(row)][0] if o[id(row)][1] >= t else "unknown",
            )


def _rules(row: Row) -> str:
    return classify.prompt_task_type(row["text"])


if __name__ == "__main__":
    main()
