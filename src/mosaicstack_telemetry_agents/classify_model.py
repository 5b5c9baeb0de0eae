"""The learned half of the task-type classifier: a linear model over the prompt's own words.

The rules of `classify.py` name the work by cues a person chose; they read a stranger's prompt
right about two times in three. This model reads what the rules cannot weigh by hand: every
word, word pair and character n-gram (2 to 5 letters, inside a word) of the prompt's first
`HEAD_CHARS` characters, lower-cased, plus the rules' own answer as one more feature. It is a
multinomial logistic regression trained on the hand-labelled real prompts of
`tests/agents/data` by `scripts/train_classifier.py` (scikit-learn, offline), whose weights ship
in `task_type_model.bin`. At run time it is pure Python: the features are hashed with CRC-32
into `2**bits` buckets (no vocabulary to load), the weights are int8 with one scale, and a
prompt costs about a millisecond.

The answer is the most probable type when its probability reaches the model's threshold (chosen
by cross-validation grouped by owner, stored with the weights), else `unknown`: the model has
an `unknown` class of its own (follow-ups, questions, chores), and an unsure answer is `unknown`
too. The text is read in memory and never logged, stored or sent.

The file's layout (little-endian): the magic `MSTT`, a format byte (1), `bits`, the number of
labels `n`, the head length (uint16), the threshold, the rules feature's value and the weights'
scale (float32 each), the labels (ASCII, newline-separated, uint16 length first), `n` biases
(float32), then `2**bits * n` int8 weights, bucket by bucket.
"""

from __future__ import annotations

import math
import os
import re
import struct
import zlib
from functools import cache
from itertools import pairwise
from typing import NamedTuple

__all__ = ["HEAD_CHARS", "Model", "features", "load", "rules_feature"]

# The request is stated first; the rest of a long prompt is pasted code or logs.
HEAD_CHARS = 600
_MAGIC = b"MSTT"
_FORMAT = 1
_HEADER = struct.Struct("<4sBBBHfff")
_WORD = re.compile(r"[^\W\d_]+|\d+")
_NGRAMS = range(2, 6)
_MODEL_FILE = "task_type_model.bin"


def _feature_names(text: str, head: int) -> set[str]:
    words = _WORD.findall(text.lower()[:head])
    names = {f"w {word}" for word in words}
    names.update(f"b {first} {second}" for first, second in pairwise(words))
    for word in words:
        padded = f" {word} "
        for size in _NGRAMS:
            names.update(f"c {padded[i : i + size]}" for i in range(len(padded) - size + 1))
    return names


def features(text: str, bits: int, head: int = HEAD_CHARS) -> list[int]:
    """The prompt's hashed feature buckets, sorted, each once (the same in every process)."""
    mask = (1 << bits) - 1
    return sorted({zlib.crc32(name.encode()) & mask for name in _feature_names(text, head)})


def rules_feature(answer: str, bits: int) -> int:
    """The bucket of the feature that says what the rules answered."""
    return zlib.crc32(f"r {answer}".encode()) & ((1 << bits) - 1)


class Model(NamedTuple):
    """Weights and settings read from a model file (a tuple: no dataclass import for the hook)."""

    bits: int
    head: int
    threshold: float
    rules_value: float
    labels: tuple[str, ...]
    biases: tuple[float, ...]
    scale: float
    weights: bytes  # int8, 2**bits rows of len(labels)

    def probabilities(self, text: str, rules_answer: str) -> list[float]:
        """Each label's probability for this prompt, in the order of `labels`."""
        buckets = features(text, self.bits, self.head)
        count = len(self.labels)
        value = self.scale / math.sqrt(len(buckets)) if buckets else 0.0
        weights = memoryview(self.weights).cast("b")  # signed, no copy
        sums = [0] * count
        for bucket in buckets:
            for k, raw in enumerate(weights[bucket * count : bucket * count + count]):
                sums[k] += raw
        at = rules_feature(rules_answer, self.bits) * count
        scores = [
            bias + value * total + self.rules_value * self.scale * raw
            for bias, total, raw in zip(self.biases, sums, weights[at : at + count], strict=True)
        ]
        top = max(scores)
        exps = [math.exp(score - top) for score in scores]
        whole = sum(exps)
        return [part / whole for part in exps]

    def answer(self, text: str, rules_answer: str) -> str:
        """The most probable label when its probability reaches the threshold, else `unknown`."""
        probs = self.probabilities(text, rules_answer)
        best = max(range(len(probs)), key=probs.__getitem__)
        return self.labels[best] if probs[best] >= self.threshold else "unknown"

    def to_bytes(self) -> bytes:
        """The model as its file holds it."""
        labels = "\n".join(self.labels).encode("ascii")
        return b"".join(
            (
                _HEADER.pack(
                    _MAGIC,
                    _FORMAT,
                    self.bits,
                    len(self.labels),
                    self.head,
                    self.threshold,
                    self.rules_value,
                    self.scale,
                ),
                struct.pack("<H", len(labels)),
                labels,
                struct.pack(f"<{len(self.labels)}f", *self.biases),
                self.weights,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        """Read a model file's bytes; a file of another layout is refused, naming what differs."""
        if len(data) < _HEADER.size + 2:
            raise ValueError("task-type model truncated: shorter than its header")
        magic, version, bits, count, head, threshold, rules_value, scale = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _FORMAT:
            raise ValueError(f"not a task-type model of format {_FORMAT}: {magic!r} {version}")
        at = _HEADER.size
        (length,) = struct.unpack_from("<H", data, at)
        at += 2
        labels = tuple(data[at : at + length].decode("ascii").split("\n"))
        at += length
        biases = struct.unpack_from(f"<{count}f", data, at)
        at += 4 * count
        weights = data[at:]
        if len(labels) != count or len(weights) != (1 << bits) * count:
            raise ValueError("task-type model truncated or mislabelled")
        if not (math.isfinite(scale) and scale > 0 and 0 < threshold <= 1):
            raise ValueError(f"task-type model settings out of range: {scale=} {threshold=}")
        return cls(bits, head, threshold, rules_value, labels, biases, scale, weights)


@cache
def load() -> Model:
    """The shipped model (read once a process)."""
    with open(os.path.join(os.path.dirname(__file__), _MODEL_FILE), "rb") as file:
        return Model.from_bytes(file.read())
