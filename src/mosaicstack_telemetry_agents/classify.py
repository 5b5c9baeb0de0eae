"""The task type of a typed prompt, guessed locally by weighted keyword rules, or `unknown`.

When no task type is configured, the hook and the imports ask this module what the person's
prompt asked for, so the estimate before a task and the event after it carry a task type. A wrong
label is worse than none: the scorer answers `unknown` unless one type clearly leads.

The rules: the prompt's first `MAX_PROMPT_CHARS` characters, lower-cased, are matched against a
table of cues per task type, each with a weight (a cue names the work: "refactor", "write tests",
"traceback", "docstring", "dockerfile", "security audit"). A cue at the very start of the prompt
(after "please", "can you", "now", "let's" ...) counts `_LEAD_BONUS` more: the verb that opens a
request says what it is. Cues of talk that is no task ("continue", "explain", "what does") score
for `unknown`. The type with the highest sum wins only if it reaches `_MIN_SCORE` and leads the
runner-up by `_MIN_MARGIN`; otherwise the answer is `unknown`.

The text is read in memory and never logged, stored or sent: only the task type leaves.
Measured on hand-labelled real prompts in `docs/integrations.md` ("Task type").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mosaicstack_telemetry.enums import TaskType

__all__ = ["MAX_PROMPT_CHARS", "classify_prompt"]

# The request is stated in a prompt's first lines; what follows is pasted code or logs, whose
# words would drown it. The bound also keeps the work per prompt fixed (the hook has 20 ms).
MAX_PROMPT_CHARS = 2000
# Sums below this are a single weak cue: not enough to name a task type.
_MIN_SCORE = 2.0
# The winner must lead the runner-up by this much: two types as likely mean "unsure".
_MIN_MARGIN = 1.0
# A cue that opens the prompt counts this much more.
_LEAD_BONUS = 1.5
# Words that may come before the verb that opens a request.
_LEAD = re.compile(
    r"^(?:(?:please|pls|can you|could you|would you|now|ok(?:ay)?|so|then|also|next|"
    r"great|perfect|thanks|let'?s|lets|i want you to|i need you to|i'?d like you to|go ahead and|"
    r"and|yes|help me|we need to|you need to)[\s,.!:;-]*)*"
)
# Claude Code's slash-command wrapper: its tags are not the person's words.
_TAGS = re.compile(r"</?command-[a-z]+>")

# Short for the cue table below.
_T = TaskType
_UNKNOWN = TaskType.UNKNOWN
_IMPLEMENTATION = TaskType.IMPLEMENTATION
# A verb of making ("add", "create", "write") counts for what is made: "add a Dockerfile" is
# configuration, "write a README" documentation; with nothing else named, implementation.
_MAKE = None
# What another type must score (without the verb) for the verb to count for it.
_MADE_SCORE = 1.5
# (task type, weight, pattern): the cue table. Patterns are matched on lower-cased text.
_CUES: Sequence[tuple[TaskType | None, float, str]] = (
    (_MAKE, 1.0, r"\b(?:add|create|build|make|write|generate|include)\b"),
    # implementation: building something new
    (_IMPLEMENTATION, 2.0, r"\bimplement\w*"),
    (_IMPLEMENTATION, 1.0, r"\b(?:new (?:feature|endpoint|page|command|component|option))"),
    (_IMPLEMENTATION, 1.0, r"\b(?:support for|feature|endpoint|button|flag|component)\b"),
    (_IMPLEMENTATION, 2.0, r"\b(?:port (?:this|it|the)|rewrite (?:this|it|the)\b)\b"),
    (_IMPLEMENTATION, 3.0, r"\bplan and implement\b"),
    (_IMPLEMENTATION, 1.0, r"\bstart implementing\b"),
    # debugging: something is wrong
    (_T.DEBUGGING, 2.0, r"\b(?:fix|fixes|bug|bugs|debug)\b"),
    (_T.DEBUGGING, 2.0, r"\w*(?:error|exception)\b|\btraceback\b|\bstack ?trace\b"),
    (_T.DEBUGGING, 2.0, r"\b(?:crash\w*|segfault)\b|\bline \d+, in\b"),
    (_T.DEBUGGING, 1.5, r"\b(?:fails?|failing|failed|broken|wrong|regression)\b"),
    (_T.DEBUGGING, 2.0, r"\bflaky\b|\b(?:is|went|turned) red\b"),
    (
        _T.DEBUGGING,
        2.0,
        r"\b(?:does ?n[o']?t|does not|do ?n[o']?t|is ?n[o']?t|won'?t|can'?t)"
        r" (?:seem to )?(?:work|start|load|run|show|render|compile|spawn|open)",
    ),
    (_T.DEBUGGING, 1.5, r"\bnot working\b|\bstill (?:does not|doesn'?t|not)\b"),
    (_T.DEBUGGING, 1.5, r"\bshould (?:be|return|show|work)\b|\bdoes nothing\b|\bsilently\b"),
    (_T.DEBUGGING, 1.0, r"\bwhy\b|\binvestigate\b|\bissue\b|\bthrows?\b|\bunable to\b"),
    (_T.DEBUGGING, 1.0, r"\b(?:i get|i'?m getting|i am getting|getting an?|got an?)\b"),
    (_T.DEBUGGING, 1.0, r"\b(?:i'?m|i am) trying to\b"),
    (_T.DEBUGGING, 1.0, r"\b(?:[45]0\d|undefined|null|nan|timeout|oom|hangs?)\b"),
    # refactoring: same behaviour, better code
    (_T.REFACTORING, 3.0, r"\brefactor\w*"),
    (_T.REFACTORING, 2.0, r"\b(?:clean ?up|simplify|restructure|reorgani[sz]e|decouple)\b"),
    (_T.REFACTORING, 2.0, r"\b(?:extract|rename|deduplicate|split|separate out)\b"),
    (_T.REFACTORING, 2.0, r"\b(?:dead code|duplicated|duplication|no behaviou?r change)"),
    (_T.REFACTORING, 1.5, r"\b(?:migrate|convert)\b.{0,40}\bto\b"),
    (_T.REFACTORING, 1.0, r"\b(?:readab\w+|hard to read|move (?:all )?the|async/await)\b"),
    # testing: writing or running tests
    (_T.TESTING, 2.0, r"\b(?:unit|integration|e2e|end-to-end|snapshot|property-based) test"),
    (_T.TESTING, 1.5, r"\b(?:write|add|create|increase|extend) (?:\w+ ){0,3}test"),
    (_T.TESTING, 2.0, r"\b(?:test ?suite|test coverage|coverage|tests? for)\b"),
    (_T.TESTING, 1.5, r"\b(?:pytest|jest|vitest|playwright|cypress|hypothesis|mock\w*)\b"),
    (_T.TESTING, 1.0, r"\btest(?:s|suite|ing)?\b|\btest cases?\b"),
    # code review: judging code that exists
    (_T.CODE_REVIEW, 3.0, r"\b(?:code review|review (?:my|the|this|these|pr|pull))"),
    (_T.CODE_REVIEW, 2.0, r"\breview(?:s|ing)?\b|\bpull request\b|\bpr ?#?\d+"),
    (_T.CODE_REVIEW, 1.5, r"\b(?:look over|feedback on|what could break|before i merge)\b"),
    (_T.CODE_REVIEW, 1.5, r"\b(?:does|is) (?:this|it) (?:look |seem )?(?:right|correct|safe)"),
    (_T.CODE_REVIEW, 1.0, r"\b(?:the diff|idiomatic|style issues)\b"),
    # documentation: words for people
    (_T.DOCUMENTATION, 2.5, r"\b(?:readme|docstrings?|jsdoc|changelog|contributing)\b"),
    (_T.DOCUMENTATION, 2.0, r"\b(?:document\w*|docs?)\b"),
    (_T.DOCUMENTATION, 1.5, r"\b(?:comments?|typos?|md (?:formatted )?file|headings)\b"),
    (_T.DOCUMENTATION, 1.0, r"\b(?:instructions|outdated)\b"),
    # configuration: build, dependencies, environment, deployment
    (_T.CONFIGURATION, 2.0, r"\b(?:configur\w+|config|set ?up|install\w*|upgrade|bump)\b"),
    (
        _T.CONFIGURATION,
        2.5,
        r"\b(?:dockerfile|docker[- ]compose|github actions|ci|kubernetes|"
        r"nginx|tsconfig|eslint|prettier|pre-commit|makefile|gitignore|renovate|conda|venv)\b",
    ),
    (_T.CONFIGURATION, 2.0, r"\benv(?:ironment)? var\w*"),
    (_T.CONFIGURATION, 1.5, r"\b(?:dependenc\w+|deploy\w*|lint\w*)\b"),
    (_T.CONFIGURATION, 1.0, r"\b(?:single command|python \d|node \d+)\b"),
    # planning: deciding before doing
    (_T.PLANNING, 3.0, r"\b(?:roadmap|task list)\b|\b(?:a|the|an|implementation) plan\b"),
    (_T.PLANNING, 3.0, r"^plan\b|\bplan (?:how|the|for|out)\b"),
    (_T.PLANNING, 2.0, r"\b(?:design|architecture|propose|outline|trade-?offs?)\b"),
    (
        _T.PLANNING,
        2.0,
        r"\b(?:break (?:this|it) down|before (?:implementing|we start)|"
        r"(?:don'?t|do not) write code|the steps|what'?s the best (?:way|approach))",
    ),
    (_T.PLANNING, 1.5, r"\b(?:beads?|tasks|structure the|strategy)\b"),
    # security audit
    (_T.SECURITY_AUDIT, 3.0, r"\b(?:security|vulnerab\w+|cves?|threat model|xss|csrf)\b"),
    (_T.SECURITY_AUDIT, 2.5, r"\b(?:sql injection|injection|hardcoded secrets?|api keys?)\b"),
    (_T.SECURITY_AUDIT, 1.5, r"\b(?:audit|secure|exploit\w*|secrets?)\b"),
    # no task: a question about the code, a request to explain
    (_UNKNOWN, 2.0, r"\b(?:explain|what does|what is|what's|where is|how does|summari[sz]e)\b"),
    (_UNKNOWN, 2.0, r"\btell me\b"),
)
_COMPILED = tuple((kind, weight, re.compile(pattern)) for kind, weight, pattern in _CUES)


def _scores(text: str) -> dict[TaskType | None, float]:
    lead = _LEAD.match(text)
    start = lead.end() if lead else 0
    scores: dict[TaskType | None, float] = {}
    for kind, weight, pattern in _COMPILED:
        match = pattern.search(text)
        if match is None:
            continue
        opens = match.start() <= start and pattern.match(text, start) is not None
        scores[kind] = scores.get(kind, 0.0) + weight + (_LEAD_BONUS if opens else 0.0)
    return scores


def _with_making(scores: dict[TaskType | None, float]) -> dict[TaskType, float]:
    """The scores with the verb of making counted for what is made."""
    making = scores.pop(_MAKE, 0.0)
    typed = {kind: score for kind, score in scores.items() if kind is not None}
    if making:
        made = [
            kind
            for kind, score in typed.items()
            if kind not in (_IMPLEMENTATION, _UNKNOWN) and score >= _MADE_SCORE
        ]
        target = max(made, key=typed.__getitem__) if made else _IMPLEMENTATION
        typed[target] = typed.get(target, 0.0) + making
    return typed


def classify_prompt(text: str) -> TaskType:
    """The task type the prompt asks for, or `TaskType.UNKNOWN` when the rules are unsure."""
    cleaned = _TAGS.sub(" ", text[:MAX_PROMPT_CHARS]).lower().strip()
    scores = _with_making(_scores(cleaned))
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if not ranked:
        return _UNKNOWN
    best, score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if score < _MIN_SCORE or score - runner_up < _MIN_MARGIN:
        return _UNKNOWN
    return best
