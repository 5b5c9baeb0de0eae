"""Aider's chat history: sessions and typed prompts read, and Aider tasks typed by their prompt.

The chat histories in `data/aider_chat/` were written by real Aider runs (provenance and licences
in `data/README.md`). Their headers are local time: the tests read them in a fixed zone, and the
command runs with `TZ` set to it.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _agents_helpers import EXE, Env, Server, sample, stored
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.classify import prompt_task_type
from mosaicstack_telemetry_agents.events import event_id
from mosaicstack_telemetry_agents.harnesses.aider import (
    HEADER_LEAD,
    parse_log,
    read_log,
    type_tasks,
)
from mosaicstack_telemetry_agents.harnesses.aider_chat import (
    FILE_NAME,
    HEADER,
    MAX_KEPT_CHARS,
    ChatSession,
    default_history,
    opening_request,
    parse_chat_history,
    read_chat_history,
)
from mosaicstack_telemetry_agents.settings import ENV_TASK_TYPE

DATA = Path(__file__).parent / "data" / "aider_chat"
# An excerpt of the Aider project's own chat history (Paul Gauthier's, August 2024, California).
AIDER = DATA / "aider-ai-aider.md"
# A whole chat history of a small project (April 2026), Aider 0.86.2 run with `--message`.
TRADING_BOT = DATA / "akash-modi104-trading-bot.md"
ZONE = ZoneInfo("America/Los_Angeles")
TZ = "America/Los_Angeles"
SEND = {"main_model": "anthropic/claude-sonnet-4-5", "prompt_tokens": 1000,
        "completion_tokens": 100, "cost": 0.01}  # fmt: skip


def _started(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_every_header_of_a_real_history_starts_a_session_and_the_text_before_one_is_kept() -> None:
    sessions = read_chat_history(AIDER)
    headers = [line for line in AIDER.read_text("utf-8").splitlines() if line.startswith(HEADER)]
    assert len(sessions) == len(headers) + 1
    before, *rest = sessions
    assert before.started is None  # the excerpt opens in the middle of a session
    assert [str(session.started) for session in rest[:3]] == [
        "2024-08-05 19:33:02",
        "2024-08-05 19:33:32",
        "2024-08-05 20:39:59",
    ]
    # A /lint run's output, sent by Aider as one 42-line input.
    (lint,) = before.prompts
    assert lint.startswith("# Fix any errors below, if possible.\n\n## Running:")
    assert lint.count("\n") == 41
    assert lint.endswith("...⋮...")


def test_a_sessions_prompts_are_its_inputs_in_order_and_its_request_the_first_that_asks() -> None:
    sessions = {str(s.started): s for s in read_chat_history(AIDER)}
    work = sessions["2024-08-19 16:03:38"]
    assert work.prompts == (
        "/drop tests/basic/test_coder.py",
        "/add tests/basic/test_main.py",
        "add a test for --sonnet --cache-prompts --exit, be sure coder.add_cache_headers=True",
        "/clear",
        "add a test for main() --sonnet --cache-prompts with return_coder. be sure "
        "coder.add_cache_headers=True",
        "add another with --4o --cache and make sure add_cache_headers is false",
    )
    assert opening_request(work) == work.prompts[2]
    assert sessions["2024-08-05 19:33:32"].prompts == (
        "Use the Spinner instead of the inlined custom spinner",
        "/diff",
        "/ex",
    )
    assert opening_request(sessions["2024-08-19 16:01:12"]) is None  # a `--lint --commit` run


def test_aiders_messages_and_answers_are_not_prompts_in_a_history_of_0_86() -> None:
    sessions = read_chat_history(TRADING_BOT)
    assert [str(s.started) for s in sessions] == [
        "2026-04-26 19:45:34",
        "2026-04-26 19:48:32",
        "2026-04-26 20:01:56",
        "2026-04-26 20:15:50",
        "2026-04-26 20:18:09",
    ]
    # Confirmations ("(Y)es/(N)o [Yes]: y"), warnings and retries are `> ` lines.
    assert [len(s.prompts) for s in sessions] == [0, 0, 1, 1, 1]
    assert sessions[2].prompts[0].startswith("> rewrite dashboard.py with a clean dark theme")
    assert opening_request(sessions[4]) == "how to fix the server it is notloading"


@pytest.mark.parametrize(
    "prompts",
    [
        ("<blank>",),
        ("/add aider/utils.py", "/run pytest"),
        ("!ls -la",),
        # A group answer Aider logs as an input (io.py `confirm_ask`).
        ("Add file to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: a",),
        # What `/help` and `/lint` send as an input.
        ("# Question: how do I use ollama?\n\n# Relevant docs:",),
        ("# Fix any errors below, if possible.",),
    ],
)
def test_commands_and_what_aider_writes_itself_are_no_request(prompts: tuple[str, ...]) -> None:
    assert opening_request(ChatSession(_started("2026-01-01 10:00:00"), prompts)) is None


def test_ask_and_code_are_read_from_the_prompt_aider_writes_after_them() -> None:
    session = ChatSession(None, ("/ask", "/code proceed", "proceed", "write tests for it"))
    assert opening_request(session) == "proceed"


def test_a_long_paste_is_kept_up_to_the_bound() -> None:
    lines = [HEADER + "2026-01-01 10:00:00", ""] + ["#### " + "x" * 99 + "  "] * 1000
    (session,) = parse_chat_history(lines)
    (prompt,) = session.prompts
    assert MAX_KEPT_CHARS - 100 < len(prompt) <= MAX_KEPT_CHARS


def test_unreadable_headers_and_bytes_still_give_sessions() -> None:
    lines: list[str | bytes] = [
        b"# aider chat started at 2024-13-45 99:99:99\n",
        "#### fix the \udcff bug  \n",
        b"#### and the \xff one  \r\n",
        "# aider chat started at yesterday",
        "####",
    ]
    first, second = parse_chat_history(lines)
    assert (first.started, second.started) == (None, None)
    assert first.prompts == ("fix the \udcff bug\nand the \ufffd one",)
    assert second.prompts == ("",)


_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Lone surrogates (category Cs) have no UTF-8 form: no file Aider writes can hold them.
_UNWRITABLE = ("Cs",)
_prompt_text = st.text(
    st.characters(exclude_characters=_BREAKS, exclude_categories=_UNWRITABLE), max_size=300
)
_answer_text = st.text(
    st.characters(exclude_characters=_BREAKS + "#\n", exclude_categories=_UNWRITABLE), max_size=80
)
_sessions = st.lists(
    st.tuples(
        st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
            lambda when: when.replace(microsecond=0)
        ),
        st.lists(_prompt_text, max_size=4),
    ),
    max_size=4,
)


def _as_aider_writes(sessions: list[tuple[datetime, list[str]]], answer: str) -> str:
    """Sessions appended the way Aider's io.py does: header, inputs, messages and answers."""
    text = ""
    for started, prompts in sessions:
        text += f"\n{HEADER}{started:%Y-%m-%d %H:%M:%S}\n\n> Aider v0.86.2  \n"
        for prompt in prompts:
            hist = "\n#### " + "  \n#### ".join(prompt.splitlines() or ["<blank>"])  # user_input
            text += hist.rstrip() + "  \n"  # append_chat_history(linebreak=True)
            text += "\n" + answer.strip() + "\n\n"  # ai_output
            text += "> Tokens: 5.2k sent, 278 received.  \n"
    return text


def _as_read(prompt: str) -> str:
    """What the history keeps of a typed prompt: its lines without trailing spaces, stripped."""
    lines = prompt.splitlines()
    return "\n".join(line.rstrip() for line in lines).strip() if lines else "<blank>"


@settings(max_examples=200, deadline=None)
@given(_sessions, _answer_text)
def test_prompts_written_as_aider_writes_them_read_back(
    sessions: list[tuple[datetime, list[str]]], answer: str
) -> None:
    data = _as_aider_writes(sessions, answer).encode("utf-8")
    parsed = parse_chat_history(data.splitlines(keepends=True))
    assert [(s.started, list(s.prompts)) for s in parsed] == [
        (started, [_as_read(prompt) for prompt in prompts]) for started, prompts in sessions
    ]


_lines = st.one_of(
    st.sampled_from(
        [HEADER + "2024-08-05 19:33:02", HEADER + "0001-01-01 00:00:00", "####", "#### x  ", "> y"]
    ),
    st.text(max_size=40),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(_lines, max_size=30))
def test_any_text_parses_and_types_without_error(text: str, lines: list[str | bytes]) -> None:
    for history in (text.splitlines(keepends=True), lines):
        sessions = parse_chat_history(history)
        assert len(sessions) <= len(history) + 1
        for session in sessions:
            opening_request(session)
        log = parse_log([_record("launched", datetime(2024, 8, 5, 19, 33, 3, tzinfo=ZONE))])
        type_tasks(log, sessions, ZONE)


def _record(event: str, at: datetime, **properties: Any) -> str:
    return json.dumps(
        {"event": event, "properties": properties, "user_id": "u", "time": int(at.timestamp())}
    )


def _run(at: datetime, *, calls: int = 1, after: timedelta = timedelta(seconds=1)) -> list[str]:
    """A launch `after` the header time `at` (local, in ZONE), its calls, and its exit."""
    launched = at.replace(tzinfo=ZONE) + after
    sends = [_record("message_send", launched + timedelta(seconds=10 * (n + 1)), **SEND)
             for n in range(calls)]  # fmt: skip
    return [_record("launched", launched), *sends, _record("exit", launched + timedelta(minutes=5))]


def test_each_launch_takes_the_type_of_the_request_that_began_its_chat_session() -> None:
    sessions = read_chat_history(AIDER)
    lines = [
        *_run(_started("2024-08-19 16:03:38")),  # "add a test for ..."
        *_run(_started("2024-08-19 16:20:02"), after=timedelta(0)),  # the same second
        *_run(_started("2024-08-20 07:59:50")),  # "hi": unknown
        *_run(_started("2024-08-19 16:01:12")),  # no prompt
        *_run(_started("2024-08-19 12:00:00")),  # no chat session in this history
        *_run(_started("2024-08-20 08:06:14"), after=HEADER_LEAD + timedelta(seconds=1)),
    ]
    log = parse_log(lines)
    assert type_tasks(log, sessions, ZONE) == 4
    assert [task.prompt_type for task in log.tasks] == [
        prompt_task_type(opening_request(sessions[i]) or "") for i in (6, 9)
    ] + ["unknown"] * 4


def test_a_chat_session_is_taken_by_one_launch_even_one_that_made_no_call() -> None:
    sessions = read_chat_history(AIDER)
    header = _started("2024-08-19 16:03:38")
    lines = [
        *_run(header, calls=0),  # Aider started and quit: its own session, no task
        *_run(header, after=timedelta(seconds=5)),  # another Aider, its history elsewhere
        _record("message_send", header.replace(tzinfo=ZONE) + timedelta(minutes=6), **SEND),
    ]
    log = parse_log(lines)
    assert (len(log.tasks), log.orphan_sessions) == (2, 1)
    assert type_tasks(log, sessions, ZONE) == 0
    assert {task.prompt_type for task in log.tasks} == {"unknown"}


def test_headers_are_local_time_of_this_machine_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", TZ)
    time.tzset()
    try:
        log = parse_log(_run(_started("2024-08-19 16:03:38")))
        assert type_tasks(log, read_chat_history(AIDER)) == 1
        began = {str(session.started): session for session in read_chat_history(AIDER)}
        request = opening_request(began["2024-08-19 16:03:38"]) or ""
        assert request.startswith("add a test for")
        assert log.tasks[0].prompt_type == prompt_task_type(request)
        # A start the system cannot place in its zone is no match, and no error.
        log = parse_log(_run(_started("2024-08-19 16:03:38")))
        assert type_tasks(log, [ChatSession(datetime(1, 1, 1), ("fix the bug",))]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_default_history_is_the_folders_else_the_git_top_folders(tmp_path: Path) -> None:
    top = tmp_path / "repo"
    inner = top / "src" / "pkg"
    inner.mkdir(parents=True)
    assert default_history(inner) is None
    (top / ".git").mkdir()
    (top / FILE_NAME).write_text("")
    assert default_history(inner) == top / FILE_NAME
    (inner / FILE_NAME).write_text("")  # Aider run there with --no-git
    assert default_history(inner) == inner / FILE_NAME
    assert default_history(tmp_path / ("x" * 5000)) is None  # a name the system refuses


# The end to end tests: the real command, a real server, real chat histories, and an analytics
# log of the real sample's calls timed to the histories' sessions.


def _analytics(tmp_path: Path) -> Path:
    calls = [
        json.loads(line)
        for line in sample("aider", "aider-ai-aider", "sample-analytics.jsonl").open()
        if '"message_send"' in line
    ]
    lines = []
    for number, header in enumerate(
        ["2024-08-19 16:03:38", "2024-08-19 16:20:02", "2024-08-20 08:06:14",
         "2024-08-20 07:59:50", "2026-04-26 20:18:09", "2026-04-26 19:45:34"]
    ):  # fmt: skip
        run = _run(_started(header))
        call = {**calls[number], "time": json.loads(run[1])["time"]}
        lines += [run[0], json.dumps(call), run[2]]
    path = tmp_path / "analytics.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _types(server: Server, log: Path) -> list[str]:
    events = stored(server, [event_id(task) for task in read_log(log).tasks])
    assert all(events)
    return [event.task_type.value for event in events]


def _expected() -> list[str]:
    sessions = {str(s.started): s for path in (AIDER, TRADING_BOT) for s in read_chat_history(path)}
    requests = [
        opening_request(sessions[header])
        for header in ("2024-08-19 16:03:38", "2024-08-19 16:20:02", "2024-08-20 08:06:14",
                       "2024-08-20 07:59:50", "2026-04-26 20:18:09", "2026-04-26 19:45:34")
    ]  # fmt: skip
    return [prompt_task_type(request) if request else "unknown" for request in requests]


def test_import_aider_types_its_tasks_from_the_chat_histories(
    env: Env, server: Server, tmp_path: Path
) -> None:
    log = _analytics(tmp_path)
    env.variables["TZ"] = TZ
    result = env.run(
        "import", "aider", "--analytics-log", str(log),
        "--chat-history", str(AIDER), "--chat-history", str(TRADING_BOT),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert b"sessions matched in the chat history" in result.stderr
    types = _types(server, log)
    assert types == _expected()
    assert (types[4], types[5]) == ("debugging", "unknown")  # a type found travels
    # The prompts stay on this machine: none is in what the command said.
    assert b"add a test for" not in result.stdout + result.stderr


def test_import_aider_reads_aiders_variable_and_its_default_file(
    env: Env, server: Server, tmp_path: Path
) -> None:
    log = _analytics(tmp_path)
    env.variables.update(TZ=TZ, AIDER_CHAT_HISTORY_FILE=str(AIDER))
    by_variable = env.run("import", "aider", "--analytics-log", str(log), "--dry-run")
    assert by_variable.returncode == 0, by_variable.stderr.decode()
    assert b"chat history" in by_variable.stderr  # the summary's count, and no warning
    assert b"AIDER_CHAT_HISTORY_FILE" not in by_variable.stderr
    del env.variables["AIDER_CHAT_HISTORY_FILE"]
    project = tmp_path / "project"
    project.mkdir()
    (project / FILE_NAME).write_bytes(TRADING_BOT.read_bytes())
    result = subprocess.run(
        [EXE, "import", "aider", "--analytics-log", str(log)],
        capture_output=True, timeout=120, env=env.variables, cwd=project, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert _types(server, log) == ["unknown"] * 4 + _expected()[4:]


def test_a_configured_task_type_wins_and_a_missing_history_is_said(
    env: Env, server: Server, tmp_path: Path
) -> None:
    log = _analytics(tmp_path)
    env.variables.update(TZ=TZ, AIDER_CHAT_HISTORY_FILE=str(tmp_path / "gone.md"))
    missing = env.run("import", "aider", "--analytics-log", str(log), "--dry-run")
    assert missing.returncode == 0
    assert b"AIDER_CHAT_HISTORY_FILE names" in missing.stderr
    flag = env.run("import", "aider", "--analytics-log", str(log), "--chat-history", "gone.md")
    assert flag.returncode == 1
    assert b"gone.md does not exist: no Aider chat history to read" in flag.stderr
    env.variables[ENV_TASK_TYPE] = "documentation"
    configured = env.run("import", "aider", "--analytics-log", str(log))
    assert configured.returncode == 0, configured.stderr.decode()
    assert b"AIDER_CHAT_HISTORY_FILE" not in configured.stderr  # not even looked for
    assert set(_types(server, log)) == {"documentation"}


def test_an_unusable_history_is_warned_about_and_the_import_goes_on(
    env: Env, tmp_path: Path
) -> None:
    log = _analytics(tmp_path)
    for named, said in (
        ("x" * 5000, b"which does not exist"),  # a name too long for the system
        ("~no-such-user-here/.aider.chat.history.md", b"which does not exist"),
    ):
        env.variables["AIDER_CHAT_HISTORY_FILE"] = named
        result = env.run("import", "aider", "--analytics-log", str(log), "--dry-run")
        assert result.returncode == 0, result.stderr.decode()
        assert said in result.stderr
    unreadable = Path("/proc/self/mem")  # a file whose first read fails (EIO)
    if not unreadable.is_file():
        pytest.skip("no /proc on this system")
    result = env.run(
        "import",
        "aider",
        "--analytics-log",
        str(log),
        "--dry-run",
        "--chat-history",
        str(unreadable),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"/proc/self/mem: cannot be read (OSError)" in result.stderr
    assert b"tasks" in result.stderr
