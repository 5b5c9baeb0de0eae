"""The learned task-type model: its features, its file, and the answers it ships with."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TaskType
from mosaicstack_telemetry_agents import classify_model
from mosaicstack_telemetry_agents.classify import prompt_task_type, rules_task_type
from mosaicstack_telemetry_agents.classify_model import HEAD_CHARS, Model, features, load

MODEL_FILE = Path(classify_model.__file__).with_name("task_type_model.bin")
WIRE = {member.value for member in TaskType}


def _tiny(threshold: float = 0.5) -> Model:
    """Two labels over 2**4 buckets, each favouring one (floats a float32 holds exactly)."""
    weights = bytes(
        (10 if bucket % 2 else 0, 0 if bucket % 2 else 10)[k]
        for bucket in range(16)
        for k in range(2)
    )
    return Model(4, 50, threshold, 0.5, ("debugging", "unknown"), (0.0, 0.0), 0.125, weights)


def test_the_shipped_model_knows_every_task_type_and_reads_the_documented_head() -> None:
    model = load()
    assert set(model.labels) == WIRE
    assert model.head == HEAD_CHARS
    assert 0.0 < model.threshold < 1.0
    assert len(model.weights) == (1 << model.bits) * len(model.labels)
    assert model == Model.from_bytes(MODEL_FILE.read_bytes())


def test_a_model_reads_back_what_it_wrote_and_refuses_another_file() -> None:
    model = _tiny()
    data = model.to_bytes()
    assert Model.from_bytes(data) == model
    with pytest.raises(ValueError, match="not a task-type model"):
        Model.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="not a task-type model"):
        Model.from_bytes(data[:4] + bytes([2]) + data[5:])
    with pytest.raises(ValueError, match="truncated"):
        Model.from_bytes(data[:-1])


def test_the_answer_is_the_likeliest_label_only_when_it_reaches_the_threshold() -> None:
    text = "fix fix fix"
    probs = _tiny().probabilities(text, "unknown")
    assert math.isclose(sum(probs), 1.0)
    best = max(range(2), key=probs.__getitem__)
    assert _tiny(threshold=probs[best]).answer(text, "unknown") == _tiny().labels[best]
    assert _tiny(threshold=min(1.0, probs[best] + 1e-6)).answer(text, "unknown") == "unknown"


def test_the_rules_answer_is_one_more_feature_of_its_own_weight() -> None:
    model = _tiny()
    text = "fix it"
    buckets = features(text, model.bits, model.head)
    for answer in ("debugging", "unknown", "testing"):
        rules = classify_model.rules_feature(answer, model.bits)
        scores = [
            bias
            + model.scale * sum(_signed(model, b, k) for b in buckets) / math.sqrt(len(buckets))
            + model.rules_value * model.scale * _signed(model, rules, k)
            for k, bias in enumerate(model.biases)
        ]
        exps = [math.exp(score - max(scores)) for score in scores]
        expected = [value / sum(exps) for value in exps]
        got = model.probabilities(text, answer)
        assert all(math.isclose(a, b) for a, b in zip(got, expected, strict=True))


def _signed(model: Model, bucket: int, k: int) -> int:
    raw = model.weights[bucket * len(model.labels) + k]
    return raw - 256 if raw > 127 else raw


def test_features_are_the_hashed_words_pairs_and_ngrams_of_the_head() -> None:
    bits = 20
    got = features("Fix the BUG", bits)
    names = {"w fix", "w the", "w bug", "b fix the", "b the bug"}
    for word in ("fix", "the", "bug"):
        padded = f" {word} "
        names |= {f"c {padded[i : i + n]}" for n in range(2, 6) for i in range(len(padded) - n + 1)}
    assert got == sorted({zlib.crc32(name.encode()) & ((1 << bits) - 1) for name in names})
    assert features("x" * HEAD_CHARS + " tail", bits) == features("x" * HEAD_CHARS, bits)
    assert features("", bits) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=800), st.integers(min_value=4, max_value=20))
def test_features_are_sorted_distinct_buckets_within_range(text: str, bits: int) -> None:
    got = features(text, bits)
    assert got == sorted(set(got))
    assert all(0 <= bucket < (1 << bits) for bucket in got)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_gives_a_wire_value_and_the_empty_prompt_none_but_unknown(text: str) -> None:
    assert prompt_task_type(text) in WIRE
    assert load().answer("", rules_task_type("")) in WIRE


def test_features_and_answers_are_the_same_in_another_process() -> None:
    # CRC-32, not hash(): a string's hash() differs between processes (PYTHONHASHSEED).
    prompts = ["Please fix the failing login test", "add a dark mode toggle", "继续"]
    code = (
        "import json, sys\n"
        "from mosaicstack_telemetry_agents.classify import prompt_task_type\n"
        "from mosaicstack_telemetry_agents.classify_model import features\n"
        "prompts = json.loads(sys.argv[1])\n"
        "print(json.dumps([[features(p, 16), prompt_task_type(p)] for p in prompts]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(prompts)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert json.loads(out.stdout) == [[features(p, 16), prompt_task_type(p)] for p in prompts]


def test_the_header_is_little_endian_and_documented() -> None:
    data = MODEL_FILE.read_bytes()
    magic, version, bits, count, head, threshold = struct.unpack_from("<4sBBBHf", data)
    assert (magic, version) == (b"MSTT", 1)
    assert (bits, count, head) == (load().bits, len(load().labels), HEAD_CHARS)
    assert threshold == pytest.approx(0.61)
    assert struct.unpack_from(">H", data, 7)[0] != head  # 600 read big-endian is another number


def test_a_file_shorter_than_its_header_or_with_settings_out_of_range_is_refused() -> None:
    data = _tiny().to_bytes()
    with pytest.raises(ValueError, match="shorter than its header"):
        Model.from_bytes(data[:10])
    with pytest.raises(ValueError, match="out of range"):
        Model.from_bytes(_tiny()._replace(scale=0.0).to_bytes())
    with pytest.raises(ValueError, match="out of range"):
        Model.from_bytes(_tiny(threshold=1.5).to_bytes())


@pytest.mark.parametrize(
    ("prompt", "answer", "probability"),
    [
        ("Write unit tests for the date parser", "testing", 0.8718),
        ("update the README", "documentation", 0.9864),
        ("continue", "unknown", 0.9527),
        ("add a button that exports the table as CSV", "implementation", 0.9229),
        ("Set up GitHub Actions to run the tests on every PR", "configuration", 0.8201),
    ],
)
def test_the_shipped_weights_give_the_answers_they_were_trained_to(
    prompt: str, answer: str, probability: float
) -> None:
    # Pinned from the model as shipped: a change of the features, of how the file is read or of
    # the weights moves them (retraining must pin them anew).
    model = load()
    probs = model.probabilities(prompt, rules_task_type(prompt))
    assert model.labels[max(range(len(probs)), key=probs.__getitem__)] == answer
    assert max(probs) == pytest.approx(probability, abs=1e-4)
    assert prompt_task_type(prompt) == answer
