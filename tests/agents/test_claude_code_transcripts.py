"""Claude Code transcripts read as turns: real sessions against ccusage, edge cases of our own.

The ccusage figures below come from ccusage 20.0.24 run offline on copies of the samples:

    npm install ccusage@20.0.24
    HOME=$T/home CLAUDE_CONFIG_DIR=$T/claude ccusage claude session --json --offline

with `$T/claude/projects/spotter/` holding `marot-spotter/*` and `$T/claude/projects/drm/`
holding `drmaciver-claude-reliability/*`. Sessions without subagents must match exactly (tokens)
and within 1% (cost); with subagents we count at least as much, more where ccusage is wrong (it
takes the subagent files' output counts, one token per line, not the parent's final figures).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import sample, write_lines
from _claude_lines import assistant as _assistant
from _claude_lines import user as _user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.harnesses.claude_code import (
    is_prompt,
    parse_session,
    read_session,
)
from mosaicstack_telemetry_agents.pricing import price_usd

# session: (input, output, cache creation, cache read, cost USD, has subagents)
CCUSAGE = {
    "258c7280-ae70-4798-800f-63464d01a85d": (198, 38908, 394137, 14972534, 12.22573120, True),
    "8463c716-a2ea-4c14-9efa-87158ebd9f20": (2578, 40359, 276819, 16207141, 11.66436270, True),
    "fa812bfe-b295-4cca-9c2f-fdf01028cb46": (1627, 36307, 360809, 16175673, 10.51234975, True),
    "4d5611e5-241a-462a-8d15-5122611a9569": (233, 28899, 559475, 12387553, 10.11369555, True),
    "ae4a77f8-aedd-4bc1-888f-c94edc91af04": (2653, 49482, 377624, 16600744, 6.17257180, True),
    "subagent": (1576, 1586, 25842, 427286, 0.51959300, False),
    "tool_heavy": (54, 212, 17696, 88231, 0.22664550, False),
    "short": (3, 13, 13835, 11515, 0.14444750, False),
    "python-to-rust-port": (38, 563, 22988, 1114040, 0.71496000, False),
    "coverage-test-fix": (9, 158, 7610, 286596, 0.19485550, False),
    "stop-hook-reflection-first-stop": (3, 55, 4169, 109646, 0.08226925, False),
    "stop-hook-uncommitted-changes": (3, 29, 3683, 71241, 0.05937925, False),
    "hello-world-script": (3, 29, 3539, 71036, 0.05837675, False),
    "stop-hook-fast-path-clean": (2, 2, 3348, 33753, 0.03786150, False),
    "stop-hook-reflection-second-stop": (2, 6, 3170, 15289, 0.02761700, False),
}


def _transcripts() -> list[Path]:
    root = sample("claude-code")
    return sorted(root.glob("*/*.jsonl"))


def _totals(path: Path) -> tuple[int, int, int, int, Decimal]:
    requests = [request for task in read_session(path).tasks for request in task.requests]
    cost = sum((price_usd(r, "anthropic") or Decimal(0) for r in requests), Decimal(0))
    return (
        sum(r.input_tokens for r in requests),
        sum(r.output_tokens for r in requests),
        sum(r.cache_write_5m_tokens + r.cache_write_1h_tokens for r in requests),
        sum(r.cache_read_tokens for r in requests),
        cost,
    )


def test_turns_add_up_to_ccusage_on_every_real_session() -> None:
    paths = _transcripts()
    assert {path.stem for path in paths} == set(CCUSAGE)
    for path in paths:
        inp, out, write, read, cost = _totals(path)
        c_in, c_out, c_write, c_read, c_cost, subagents = CCUSAGE[path.stem]
        assert (inp, write, read) == (c_in, c_write, c_read), path.stem
        if subagents:
            # The parents' results give the subagents' true output; ccusage counts 1 per line.
            assert out > c_out, path.stem
            assert float(cost) >= c_cost, path.stem
        else:
            assert out == c_out, path.stem
            assert float(cost) == pytest.approx(c_cost, rel=0.01), path.stem


def test_subagent_final_output_comes_from_the_parents_result() -> None:
    path = sample("claude-code", "marot-spotter", "258c7280-ae70-4798-800f-63464d01a85d.jsonl")
    transcript = read_session(path)
    assert transcript.subagents == 2
    outputs = [r.output_tokens for task in transcript.tasks for r in task.requests]
    # agent-a881341's last message: 997 output tokens in the parent's tool result, 1 in its file.
    assert 997 in outputs


def test_a_stop_hook_that_makes_the_agent_go_on_stays_in_the_same_turn() -> None:
    path = sample(
        "claude-code", "drmaciver-claude-reliability", "stop-hook-reflection-first-stop.jsonl"
    )
    transcript = read_session(path)
    assert len(transcript.tasks) == 1  # the "Stop hook feedback" line is not a prompt
    assert transcript.tasks[0].outcome == "success"


def _lines(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(record) for record in records]


@pytest.mark.parametrize(
    ("record", "prompt"),
    [
        (_user("fix the bug"), True),
        (_user("<command-name>/review</command-name>"), True),
        (_user([{"type": "text", "text": "look at this"}, {"type": "image"}]), True),
        (_user([{"type": "image", "source": {}}]), True),
        (_user([{"type": "tool_result", "content": "ok"}]), False),
        (_user("Stop hook feedback: keep going", isMeta=True), False),
        (_user("<local-command-stdout>done</local-command-stdout>"), False),
        (_user("<task-notification><task-id>b1</task-id></task-notification>"), False),
        (_user("This session is being continued", isCompactSummary=True), False),
        (_user([{"type": "text", "text": "[Request interrupted by user]"}]), False),
        (_user("subagent task", isSidechain=True), False),
        (_user(""), False),
        ({"type": "assistant"}, False),
    ],
)
def test_only_what_the_person_typed_is_a_prompt(record: dict[str, Any], prompt: bool) -> None:
    assert is_prompt(record) is prompt


def test_streaming_lines_count_once_with_their_final_counts() -> None:
    records = [
        _user("task", uuid="p1"),
        _assistant("m1", 5, "2026-02-01T10:00:01Z", read=100),
        _assistant("m1", 5, "2026-02-01T10:00:02Z", read=100),
        _assistant("m1", 420, "2026-02-01T10:00:03Z", read=100),
        _assistant("m2", 7, "2026-02-01T10:00:09Z", write=50, write_1h=20),
    ]
    transcript = parse_session("s", _lines(records))
    (task,) = transcript.tasks
    assert [r.output_tokens for r in task.requests] == [420, 7]
    assert task.requests[1].cache_write_1h_tokens == 20
    assert task.requests[1].cache_write_5m_tokens == 30
    assert task.duration_ms == 9000
    assert task.key == "p1"


def test_each_prompt_starts_a_turn_and_outcomes_are_read_from_the_transcript() -> None:
    records = [
        _user("first", uuid="p1", timestamp="2026-02-01T10:00:00Z"),
        _assistant("m1", 10, "2026-02-01T10:00:01Z"),
        _user([{"type": "text", "text": "[Request interrupted by user]"}]),
        _user("second", uuid="p2", timestamp="2026-02-01T10:01:00Z"),
        _assistant("m2", 10, "2026-02-01T10:01:01Z"),
        {
            **_assistant("m3", 0, "2026-02-01T10:01:02Z", model="<synthetic>"),
            "isApiErrorMessage": True,
        },
        _user("third", uuid="p3", timestamp="2026-02-01T10:02:00Z"),
        {"type": "system", "subtype": "compact_boundary", "timestamp": "2026-02-01T10:02:01Z"},
        _assistant("m4", 10, "2026-02-01T10:02:02Z", model="claude-opus-4-6"),
        _user("no work"),
    ]
    transcript = parse_session("s", _lines(records))
    assert [t.key for t in transcript.tasks] == ["p1", "p2", "p3"]
    assert [t.outcome for t in transcript.tasks] == ["partial", "failure", "success"]
    assert transcript.tasks[2].compactions == 1
    assert transcript.tasks[2].model == "claude-opus-4-6"


def test_subagent_files_fold_into_the_turn_that_started_them(tmp_path: Path) -> None:
    main = tmp_path / "sess.jsonl"
    write_lines(
        main,
        [
            _user("one", uuid="p1", timestamp="2026-02-01T10:00:00Z"),
            _assistant("m1", 10, "2026-02-01T10:00:01Z"),
            {
                **_user([{"type": "tool_result", "content": "done"}]),
                "timestamp": "2026-02-01T10:00:30Z",
                "toolUseResult": {
                    "agentId": "abc",
                    "usage": {
                        "input_tokens": 3,
                        "output_tokens": 900,
                        "cache_read_input_tokens": 0,
                        "cache_creation_input_tokens": 40,
                    },
                },
            },
            _user("two", uuid="p2", timestamp="2026-02-01T10:05:00Z"),
            _assistant("m2", 10, "2026-02-01T10:05:01Z"),
        ],
    )
    write_lines(
        tmp_path / "sess" / "subagents" / "agent-abc.jsonl",
        [
            _user("sub task", isSidechain=True, timestamp="2026-02-01T10:00:02Z"),
            _assistant("s1", 1, "2026-02-01T10:00:03Z", input=3, write=40),
        ],
    )
    transcript = read_session(main)
    first, second = transcript.tasks
    assert [r.output_tokens for r in first.requests] == [10, 900]
    assert len(second.requests) == 1


def test_broken_and_unknown_lines_are_counted_and_skipped() -> None:
    lines = [
        "{not json",
        "[1, 2]",
        json.dumps({"type": "future-line-type", "data": 1}),
        json.dumps(_user("task", uuid="p1")),
        json.dumps(_assistant("m1", 3, "2026-02-01T10:00:01Z")),
        "",
    ]
    transcript = parse_session("s", lines)
    assert transcript.tally.broken == 2
    assert len(transcript.tasks) == 1


def test_a_large_transcript_is_read_as_a_stream() -> None:
    import tracemalloc

    filler = json.dumps(_user([{"type": "tool_result", "content": "x" * 100_000}]))

    def lines():  # ~40 MB, never held at once
        yield json.dumps(_user("go", uuid="p1"))
        for number in range(400):
            yield filler
            yield json.dumps(_assistant(f"m{number}", 1, "2026-02-01T10:00:01Z"))

    tracemalloc.start()
    transcript = parse_session("s", lines())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(transcript.tasks[0].requests) == 400
    assert peak < 8 * 1024 * 1024


_records = st.one_of(
    st.builds(
        _user, st.sampled_from(["task", "", "<local-command-stdout>x"]), uuid=st.uuids().map(str)
    ),
    st.builds(
        _assistant,
        st.sampled_from(["m1", "m2", "m3", "m4"]),
        st.integers(0, 10_000),
        st.sampled_from(["2026-02-01T10:00:01Z", "2026-02-01T10:00:05Z", "bad time"]),
    ),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_records, max_size=30), st.lists(st.binary(max_size=40), max_size=5))
def test_parsing_never_fails_and_counts_each_message_once_with_its_largest_output(
    records: list[dict[str, Any]], garbage: list[bytes]
) -> None:
    lines: list[str | bytes] = [*_lines(records), *garbage]
    transcript = parse_session("s", lines)
    expected: dict[str, int] = {}
    for record in records:
        if record.get("type") == "assistant":
            key = f"{record['message']['id']}/{record['requestId']}"
            output = record["message"]["usage"]["output_tokens"]
            expected[key] = max(expected.get(key, 0), output)
    counted = {r.key: r.output_tokens for t in transcript.tasks for r in t.requests}
    assert counted == expected
