"""The task type of a typed prompt, guessed locally, or `unknown`.

When no task type is configured, the hook and the imports ask this module what the person's
prompt asked for, so the estimate before a task and the event after it carry a task type. A wrong
label is worse than none: the answer is `unknown` unless the type is likely enough.

`prompt_task_type` asks the learned model (`classify_model.py`), which reads the prompt's words
and the answer of the rules below (`rules_task_type`); the model decides.

The rules: the prompt's first `MAX_PROMPT_CHARS` characters, lower-cased, without the files
attached before the request ("@PRD.md @README.md please ..."), are matched against a table of
cues per task type, each with a weight (a cue names the work: "refactor", "write tests",
"traceback", "docstring", "dockerfile", "security audit"). The request is the head (up to the
first blank line, or a colon that introduces pasted material): when the head holds a cue, what
follows (pasted docs, code, logs) is not read; a prompt that is all paste is read whole, for
debugging cues only. A verb at the very start (after "please", "can you", "now", "let's" ...)
counts `_LEAD_BONUS` more: the verb that opens a request says what it is. A verb of making
("add", "write") counts for what is made. Cues of talk that is no task ("explain", "what does")
and of version-control chores ("commit and push") score for `unknown`. The type with the highest
sum wins only if it reaches `_MIN_SCORE` and leads the runner-up by `_MIN_MARGIN`; otherwise the
answer is `unknown`.
A file's name is blanked first (`config.py` is no configuration work), and a prompt that opens
with a shell command or a web address (a command typed as a prompt, pasted with its output) is
`unknown`.
These cues are English. A prompt in another language (its script, its common words, or letters
English does not write) is read by the cues of its own language (`classify_languages.py`), never
from the English words it borrows.

The text is read in memory and never logged, stored or sent: only the task type leaves.
Measured on hand-labelled real prompts, and estimated for strangers' prompts by cross-validation
grouped by owner (`scripts/classify_cv.py`), in `docs/integrations.md` ("Task type").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cache
from itertools import islice
from typing import TYPE_CHECKING

from mosaicstack_telemetry_agents import classify_model

if TYPE_CHECKING:  # imported when called: the hook must start without the SDK (~0.2 s)
    from mosaicstack_telemetry.enums import TaskType

__all__ = ["MAX_PROMPT_CHARS", "classify_prompt", "prompt_task_type", "rules_task_type"]

# The request is stated in a prompt's first lines; what follows is pasted code or logs, whose
# words would drown it. The bound also keeps the work per prompt fixed (the hook has 20 ms).
MAX_PROMPT_CHARS = 2000
# Sums below this are a single weak cue: not enough to name a task type.
_MIN_SCORE = 2.0
# The winner must lead the runner-up by this much: two types as likely mean "unsure".
_MIN_MARGIN = 1.0
# A cue that opens the prompt counts this much more.
_LEAD_BONUS = 1.5
# The head (the request) is at most this long: a few sentences.
_HEAD_CHARS = 500
# A colon this far in or further ends the head ("fix: ..." does not).
_MIN_HEAD_CHARS = 15
# How many words are read to tell the language.
_LANGUAGE_WORDS = 60
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# Common words of languages other than English (French, Spanish, Portuguese, German,
# Indonesian), none of them an English word.
_FOREIGN = frozenset(
    _WORD.findall(
        "le la les des du et est une un pour dans sur avec que qui pas ce cette tu je nous vous "
        "mon ma mes ton ta il elle sont au aux par el los las del es una para con por como más o "
        "os da dos das não é um der und ist nicht ein eine mit für auf ich wir dan yang di ini itu "
        "ada atau dengan untuk apakah coba nie jest się że czy jak ale tak oraz dla jeszcze tylko "
        "może proszę żeby który która które są być przy aby albo lub teraz jako wszystkie"
    )
)
# Letters English does not write: a word that holds one is another language's (Polish, German,
# Spanish, Portuguese, French ...), even where it is none of the common words above. A set, not a
# character class: compiling the pattern would cost a new hook process ~0.3 ms.
_ACCENTED = frozenset("ąęłńśźżćñãõçßäöüáíóúàèéêôâîûœ")
# Kana, CJK ideographs and Hangul lie between these (tested by comparison: a pattern of the
# range takes ~3.6 ms to compile). One of their characters holds about a word's meaning, so
# each counts as this many English letters when the scripts are weighed.
_CJK_FIRST, _CJK_LAST = "\u3040", "\ud7af"
_CJK_LETTERS = 4
_ENGLISH = frozenset(
    _WORD.findall(
        "the a an to and of in on for with is it this that i you we my me please can be are not "
        "do does what how why so at from by as or if there here now all then should will would "
        "just into up out your our its it's i'm don't let's lets let"
    )
)
_ASCII_LETTER = re.compile(r"[a-z]")
_LETTER = re.compile(r"[^\W\d_]")
# Words that may come before the verb that opens a request.
_LEAD = re.compile(
    r"^(?:(?:please|pls|can you|could you|would you|now|ok(?:ay)?|so|then|also|next|"
    r"great|perfect|thanks|let'?s|lets|i want you to|i need you to|i'?d like you to|go ahead and|"
    r"and|yes|help me|we need to|you need to)[\s,.!:;-]*)*"
)
# Verbs that open a request: a cue that is one of them, at the start, gets the lead bonus (a noun
# at the start, "pytest fails ...", "lint output: ...", says less).
_OPENING_VERB = re.compile(
    r"(?:fix|debug|resolve|investigate|refactor|clean|simplify|extract|rename|split|move|convert|"
    r"migrate|replace|deduplicate|remove|write|add|create|build|make|generate|implement|port|"
    r"rewrite|review|document|configure|set|install|upgrade|bump|plan|design|outline|propose|"
    r"audit|check|explain|summari[sz]e|increase|extend)\b"
)
# Claude Code's slash-command wrapper: its tags are not the person's words.
_TAGS = re.compile(r"</?command-[a-z]+>")
# Files attached before the request (Cursor's "@PRD.md @README.md please ..."): context, whose
# names would be read as the request ("README" as documentation).
_ATTACHED = re.compile(r"(?:@\S+\s*)+")
# A file's name says where the work is, not what it is: "default configs in config.py" is not
# configuration work, "the test.mdc rule" not testing. Names with an extension (and paths, and
# files attached with "@") are blanked before the cues are read. Kept: the names that are the
# work's own (a README or changelog is documentation, an eslint or Docker file configuration).
# A name is tried only where a run of path characters starts: the same names (the greedy path
# reaches the run's last extension), without re-reading the run from each of its characters.
_EXTENSION = (
    r"\.(?:py|pyi|ts|tsx|js|jsx|mjs|cjs|mdc?|ya?ml|jsonc?|toml|txt|conf|cfg|ini|html|css|scss|sh|"
    r"rs|go|java|kt|rb|php|lock|sql|ipynb)\b"
)
_FILE_NAME = r"@\S+|(?<![\w./\\-])[\w./\\-]*[\w-]" + _EXTENSION
# What every name holds: an "@" where it starts, or an extension in its path. Found by a fast scan
# for the two characters, they say where a name may start; most prompts hold none.
_NAME_CLUE = "@|" + _EXTENSION
_PATH = r"[\w./\\-]*"  # a path, read back from an extension
# These are compiled when first needed (`_compiled`), as the cues are: a new hook process whose
# prompt holds no "." or "@" (or no name, or no command) does not pay ~0.8 ms compiling them.
_KEPT_NAME = r"readme|changelog|contributing|conventions|eslint|prettier|tsconfig|docker"
_QUOTED = r"\"[^\"]*\"|'[^']*'|`[^`]*`"
# A shell command typed as the prompt ("npm run dev", "git commit -m ...", "python -m app q x"),
# or a web address pasted on its own line: what follows it is its output or the page, no request.
_COMMAND_LINE = re.compile(
    r"(?:\$ ?)?(?:(?:git|python3?|npm|npx|pnpm|yarn|pip3?|uvx?|cd|ls|cat|curl|wget|docker|"
    r"docker-compose|kubectl|make|cargo|node|bash|sh|sudo|poetry|pytest|go|deno|bun|brew|"
    r"apt(?:-get)?)(?: [^\n]*)?|https?://\S+)[ \t]*(?:\n|$)"
)
# Or any first line with a flag ("tool sub -x ..."): tried (and compiled) only when the first line
# holds a "-", as looking for a flag reads the whole line (~0.05 ms for 2,000 characters).
_FLAGGED_LINE = r"(?:\$ ?)?[\w.-]+ [^\n]*?(?<!\S)--?[a-z][^\n]*[ \t]*(?:\n|$)"


class _T:
    """`TaskType`'s wire values, named as in the enum (the tests hold the two equal)."""

    PLANNING = "planning"
    IMPLEMENTATION = "implementation"
    CODE_REVIEW = "code_review"
    TESTING = "testing"
    DEBUGGING = "debugging"
    REFACTORING = "refactoring"
    DOCUMENTATION = "documentation"
    CONFIGURATION = "configuration"
    SECURITY_AUDIT = "security_audit"
    UNKNOWN = "unknown"


_UNKNOWN = _T.UNKNOWN
_IMPLEMENTATION = _T.IMPLEMENTATION
# A verb of making ("add", "create", "write") counts for what is made: "add a Dockerfile" is
# configuration, "write a README" documentation; with nothing else named, implementation.
_MAKE = None
# What another type must score (without the verb) for the verb to count for it.
_MADE_SCORE = 1.5
# What is never made: a defect ("add a feature ... there should be 2 sections" is no bug), or no
# task (and implementation takes the verb anyway when nothing else is named).
_NOT_MADE = (_IMPLEMENTATION, _UNKNOWN, _T.DEBUGGING)
# (task type, weight, needles, pattern): the cue table, matched on lower-cased text. Every match
# of a pattern holds one of its needles (`test_classify.py` checks it), so a cue none of whose
# needles is in the text is neither compiled nor searched: a new hook process compiles the few
# patterns its prompt may match, not the whole table.
_CUES: Sequence[tuple[str | None, float, tuple[str, ...], str]] = (
    (
        _MAKE,
        1.0,
        ("add", "create", "build", "make", "write", "generate", "include"),
        r"\b(?:add|create|build|make|write|generate|include)\b",
    ),
    # implementation: building something new
    (_IMPLEMENTATION, 2.0, ("implement",), r"\bimplement\w*"),
    (
        _IMPLEMENTATION,
        1.0,
        ("new ",),
        r"\b(?:new (?:feature|endpoint|page|command|component|option))",
    ),
    (
        _IMPLEMENTATION,
        1.0,
        ("support for", "feature", "endpoint", "button", "flag", "component"),
        r"\b(?:support for|feature|endpoint|button|flag|component)\b",
    ),
    (
        _IMPLEMENTATION,
        2.0,
        ("port ", "rewrite "),
        r"\b(?:port (?:this|it|the)|rewrite (?:this|it|the)\b)\b",
    ),
    (_IMPLEMENTATION, 3.0, ("plan and implement",), r"\bplan and implement\b"),
    # carrying out a plan made before (Cursor's plan mode: "Implement the plan as specified")
    (
        _IMPLEMENTATION,
        4.0,
        ("the plan", "this plan"),
        r"\b(?:implement|execute|follow|carry out|proceed with) (?:the|this) plan\b",
    ),
    (_IMPLEMENTATION, 1.0, ("start implementing",), r"\bstart implementing\b"),
    # debugging: something is wrong
    (
        _T.DEBUGGING,
        2.0,
        ("fix", "bug", "resolve "),
        r"\b(?:fix|fixes|bug|bugs|debug)\b|\bresolve (?:the |github )*issue",
    ),
    (
        _T.DEBUGGING,
        2.0,
        ("error", "exception", "traceback", "stack"),
        r"\w*(?:error|exception)\b|\btraceback\b|\bstack ?trace\b",
    ),
    (
        _T.DEBUGGING,
        2.0,
        ("crash", "segfault", "line "),
        r"\b(?:crash\w*|segfault)\b|\bline \d+, in\b",
    ),
    (
        _T.DEBUGGING,
        1.5,
        ("fail", "broken", "wrong", "regression"),
        r"\b(?:fails?|failing|failed|broken|wrong|regression)\b",
    ),
    (_T.DEBUGGING, 2.0, ("flaky", " red"), r"\bflaky\b|\b(?:is|went|turned) red\b"),
    # a compiler's or linter's finding, "src/app.py:54:7: N818 ...", its file's name blanked
    (_T.DEBUGGING, 2.0, tuple(f":{digit}" for digit in range(10)), r"(?<=\s):\d+:\d+\b"),
    # what the program should do and does not ("the modal did not go away", "it's not opening")
    (
        _T.DEBUGGING,
        2.0,
        ("not ", "n't "),
        r"\b(?:it'?s|is|are|was|did|does) ?n[o']?t (?:\w+ing|appear\w*|go away|chang\w*|"
        r"updat\w*|sav\w*|display\w*|respond\w*)\b",
    ),
    # lint findings to fix: the linter's setup is configuration, its findings are defects
    (
        _T.DEBUGGING,
        2.0,
        ("lint", "ruff", "mypy"),
        r"\b(?:lint|linter|ruff|mypy|eslint) (?:errors?|warnings?|findings|issues)\b",
    ),
    (
        _T.DEBUGGING,
        2.0,
        ("work", "start", "load", "run", "show", "render", "compile", "spawn", "open"),
        r"\b(?:does ?n[o']?t|does not|do ?n[o']?t|is ?n[o']?t|won'?t|can'?t)"
        r" (?:seem to )?(?:work|start|load|run|show|render|compile|spawn|open)",
    ),
    (
        _T.DEBUGGING,
        1.5,
        ("not working", "still "),
        r"\bnot working\b|\bstill (?:does not|doesn'?t|do not|don'?t|not|can'?t|isn'?t|prevents)\b",
    ),
    (_T.DEBUGGING, 1.5, ("should ",), r"\bshould (?:\w+ )?(?:be|return|show|work)\b"),
    (_T.DEBUGGING, 1.5, ("does nothing", "silently"), r"\bdoes nothing\b|\bsilently\b"),
    (
        _T.DEBUGGING,
        1.0,
        ("why", "investigate", "issue", "throw", "unable to"),
        r"\bwhy\b|\binvestigate\b|\bissue\b|\bthrows?\b|\bunable to\b",
    ),
    (
        _T.DEBUGGING,
        1.0,
        ("i get", "getting", "got a"),
        r"\b(?:i get|i'?m getting|i am getting|getting an?|got an?)\b",
    ),
    (
        _T.DEBUGGING,
        1.0,
        ("trying to", "weird", "strange"),
        r"\b(?:i'?m|i am) trying to\b|\bweird\b|\bstrange\b",
    ),
    (
        _T.DEBUGGING,
        1.5,
        ("cannot find", "not defined", "does not exist", "not found"),
        r"\b(?:cannot find|(?:is )?not defined|does not exist|not found)\b",
    ),
    (
        _T.DEBUGGING,
        1.0,
        ("40", "50", "undefined", "null", "nan", "timeout", "oom", "hang"),
        r"\b(?:[45]0\d|undefined|null|nan|timeout|oom|hangs?)\b",
    ),
    # refactoring: same behaviour, better code
    (_T.REFACTORING, 3.0, ("refactor",), r"\brefactor\w*"),
    (
        _T.REFACTORING,
        2.0,
        ("clean", "simplify", "restructure", "reorgani", "decouple"),
        r"\b(?:clean ?up|simplify|restructure|reorgani[sz]e|decouple)\b",
    ),
    (
        _T.REFACTORING,
        2.0,
        ("extract", "rename", "deduplicate", "split", "separate out"),
        r"\b(?:extract|rename|deduplicate|split|separate out)\b",
    ),
    (
        _T.REFACTORING,
        2.0,
        ("dead code", "duplicat", "no behavio"),
        r"\b(?:dead code|duplicated|duplication|no behaviou?r change)",
    ),
    (
        _T.REFACTORING,
        1.5,
        ("migrate", "convert", "replace"),
        r"\b(?:migrate|convert)\b.{0,40}\bto\b|\breplace\b.{0,60}\bwith\b",
    ),
    (
        _T.REFACTORING,
        1.0,
        ("readab", "hard to read", "move ", "async/await"),
        r"\b(?:readab\w+|hard to read|move (?:all )?the|async/await)\b",
    ),
    # testing: writing or running tests
    (
        _T.TESTING,
        2.0,
        (" test",),
        r"\b(?:unit|integration|e2e|end-to-end|snapshot|property-based) test",
    ),
    # "tests?", not "create a file test_file.py"
    (
        _T.TESTING,
        1.5,
        (" test",),
        r"\b(?:write|add|create|increase|extend) (?:\w+ ){0,3}test(?:s|ing)?\b",
    ),
    (
        _T.TESTING,
        2.0,
        ("test", "coverage"),
        r"\b(?:test ?suite|test coverage|coverage|tests? for)\b",
    ),
    (
        _T.TESTING,
        1.5,
        ("pytest", "jest", "vitest", "playwright", "cypress", "hypothesis", "mock"),
        r"\b(?:pytest|jest|vitest|playwright|cypress|hypothesis|mock\w*)\b",
    ),
    (_T.TESTING, 1.0, ("test",), r"\btest(?:s|suite|ing)?\b|\btest cases?\b"),
    # code review: judging code that exists
    (
        _T.CODE_REVIEW,
        3.0,
        ("code review", "review "),
        r"\b(?:code review|review (?:my|the|this|these|pr|pull))",
    ),
    (
        _T.CODE_REVIEW,
        2.0,
        ("review", "pull request", "pr"),
        r"\breview(?:s|ing)?\b|\bpull request\b|\bpr ?#?\d+",
    ),
    (
        _T.CODE_REVIEW,
        1.5,
        ("look over", "feedback on", "what could break", "before i merge"),
        r"\b(?:look over|feedback on|what could break|before i merge)\b",
    ),
    (
        _T.CODE_REVIEW,
        1.5,
        ("right", "correct", "safe"),
        r"\b(?:does|is) (?:this|it) (?:look |seem )?(?:right|correct|safe)",
    ),
    (
        _T.CODE_REVIEW,
        2.0,
        ("conform", "comply", "complies"),
        r"\b(?:conforms?|comply|complies) (?:to|with)\b",
    ),
    (
        _T.CODE_REVIEW,
        1.0,
        ("the diff", "idiomatic", "style issues"),
        r"\b(?:the diff|idiomatic|style issues)\b",
    ),
    # documentation: words for people
    (
        _T.DOCUMENTATION,
        2.5,
        ("readme", "docstring", "jsdoc", "changelog", "contributing"),
        r"\b(?:readme|docstrings?|jsdoc|changelog|contributing)\b",
    ),
    (_T.DOCUMENTATION, 2.0, ("doc",), r"\b(?:documentation|docs?)\b"),
    (
        _T.DOCUMENTATION,
        2.0,
        ("document ",),
        r"\bdocument (?:the|this|how|all|it|every|each|its|our|my|what)\b",
    ),
    # the docs as a source to follow, not the work: "based on the API docs, update the code"
    (
        _T.DOCUMENTATION,
        -2.5,
        ("doc",),
        r"\b(?:based on|according to|here (?:is|are)|this is|per|follow(?:ing)?|from) "
        r"(?:the |my |this |our |updated |your |api |some )*(?:docs?|documentation)\b",
    ),
    (
        _T.DOCUMENTATION,
        1.5,
        ("comment", "typo", "md ", "headings"),
        r"\b(?:comments?|typos?|md (?:formatted )?file|headings)\b",
    ),
    (_T.DOCUMENTATION, 1.0, ("instructions", "outdated"), r"\b(?:instructions|outdated)\b"),
    # text to put into Markdown is words for people, whatever it says
    (
        _T.DOCUMENTATION,
        2.0,
        ("markdown",),
        r"\bformat\w* (?:\w+ ){0,3}(?:in|as|into) markdown\b|\b(?:into|as) (?:a )?markdown\b|"
        r"\bmarkdown (?:format\w*|document)",
    ),
    # an agent's conventions file is words for the agent, as its rules are
    (_T.DOCUMENTATION, 2.5, ("conventions",), r"\bconventions\b"),
    # an agent's rules are words for the agent: Cursor's `.mdc` rule files
    (
        _T.DOCUMENTATION,
        2.5,
        ("mdc", "cursor"),
        r"\bmdc\b|\bcursor ?/?rules?\b|\.cursorrules\b",
    ),
    # configuration: build, dependencies, environment, deployment
    (
        _T.CONFIGURATION,
        2.0,
        ("configur", "set", "install", "upgrade", "bump"),
        r"\b(?:configur\w+|set ?up|install\w*|upgrade|bump)\b",
    ),
    # "config" names a file or a setting as often as the work ("the config code", "my config")
    (_T.CONFIGURATION, 1.0, ("config",), r"\bconfigs?\b"),
    (
        _T.CONFIGURATION,
        2.5,
        (
            "docker",
            "github actions",
            "ci",
            "kubernetes",
            "nginx",
            "tsconfig",
            "eslint",
            "prettier",
            "pre-commit",
            "makefile",
            "gitignore",
            "renovate",
            "conda",
            "venv",
        ),
        r"\b(?:dockerfile|docker[- ]compose|github actions|ci|kubernetes|"
        r"nginx|tsconfig|eslint|prettier|pre-commit|makefile|gitignore|renovate|conda|venv)\b",
    ),
    (_T.CONFIGURATION, 2.0, ("env",), r"\benv(?:ironment)? var\w*|(?:^|\s)\.env\b"),
    (
        _T.CONFIGURATION,
        1.5,
        ("dependenc", "deploy", "lint"),
        r"\b(?:dependenc\w+|deploy\w*)\b|\blint\w*\b(?! (?:errors?|warnings?|findings|issues))",
    ),
    (
        _T.CONFIGURATION,
        1.0,
        ("single command", "python ", "node "),
        r"\b(?:single command|python \d|node \d+)\b",
    ),
    # planning: deciding before doing
    (
        _T.PLANNING,
        3.0,
        ("roadmap", "task list", " plan"),
        r"\b(?:roadmap|task list)\b|\b(?:a|the|an|implementation) plan\b",
    ),
    (_T.PLANNING, 3.0, ("plan",), r"^plan\b|\bplan (?:how|the|for|out)\b"),
    (
        _T.PLANNING,
        2.0,
        ("design", "architecture", "propose", "outline", "trade"),
        r"\b(?:design|architecture|propose|outline|trade-?offs?)\b",
    ),
    (
        _T.PLANNING,
        2.0,
        ("break ", "before ", "write code", "the steps", "the best"),
        r"\b(?:break (?:this|it) down|before (?:implementing|we start)|"
        r"(?:don'?t|do not) write code|the steps|what'?s the best (?:way|approach))",
    ),
    (
        _T.PLANNING,
        1.5,
        ("bead", "tasks", "structure the", "strategy"),
        r"\b(?:beads?|tasks|structure the|strategy)\b",
    ),
    # security audit
    (
        _T.SECURITY_AUDIT,
        3.0,
        ("security", "vulnerab", "cve", "threat model", "xss", "csrf"),
        r"\b(?:security|vulnerab\w+|cves?|threat model|xss|csrf)\b",
    ),
    (
        _T.SECURITY_AUDIT,
        2.5,
        ("injection", "hardcoded secret", "api key"),
        r"\b(?:sql injection|injection|hardcoded secrets?|api keys?)\b",
    ),
    (
        _T.SECURITY_AUDIT,
        1.5,
        ("audit", "secure", "exploit", "secret"),
        r"\b(?:audit|secure|exploit\w*|secrets?)\b",
    ),
    # no task: a question about the code, a request to explain
    (
        _UNKNOWN,
        2.0,
        ("explain", "what", "where is", "how does", "summari"),
        r"\b(?:explain|what does|what is|what's|where is|how does|summari[sz]e)\b",
    ),
    (_UNKNOWN, 2.0, ("tell me",), r"\btell me\b"),
    # version-control chores: no task type of their own
    (
        _UNKNOWN,
        2.0,
        ("git ", "commit", "push"),
        r"\bgit (?:commit|push|pull|add)\b|\bcommit ?(?:/|and|&) ?push\b|"
        r"\bpush (?:it )?to (?:github|origin|the repo)",
    ),
    # a commit message is a version-control chore too, whatever the commit holds
    (_UNKNOWN, 4.0, ("commit message",), r"\bcommit messages?\b"),
)
_DEBUGGING_CUES = tuple(cue for cue in _CUES if cue[0] == _T.DEBUGGING)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _head_end(text: str) -> int:
    """Where the request ends: the first blank line, or a colon that introduces pasted text."""
    end = min(len(text), _HEAD_CHARS)
    paragraph = text.find("\n\n", 0, end)
    end = paragraph if paragraph >= 0 else end
    colon = text.find(":", _MIN_HEAD_CHARS, end)
    while colon >= 0 and not text[colon + 1 : colon + 2].isspace():
        colon = text.find(":", colon + 1, end)  # "http://", "12:30": not an introduction
    return colon if colon >= 0 else end


def _scores(
    text: str, end: int, cues: Sequence[tuple[str | None, float, tuple[str, ...], str]] = _CUES
) -> dict[str | None, float]:
    lead = _LEAD.match(text, 0, end)
    start = lead.end() if lead else 0
    window = text[:end]
    scores: dict[str | None, float] = {}
    for kind, weight, needles, source in cues:
        if not any(needle in window for needle in needles):
            continue
        pattern = _compiled(source)
        match = pattern.search(text, 0, end)
        if match is None:
            continue
        opens = (
            match.start() <= start
            and pattern.match(text, start, end) is not None
            and _OPENING_VERB.match(text, start, end) is not None
        )
        scores[kind] = scores.get(kind, 0.0) + weight + (_LEAD_BONUS if opens else 0.0)
    return scores


def _pasted(text: str) -> dict[str | None, float]:
    return _scores(text, len(text), _DEBUGGING_CUES)


def _foreign(text: str) -> bool:
    """Whether the text is in another language than the cues: by its script or common words."""
    letters = len(_LETTER.findall(text, 0, _HEAD_CHARS))
    ascii_letters = len(_ASCII_LETTER.findall(text, 0, _HEAD_CHARS))
    head = text[:_HEAD_CHARS]
    cjk = 0 if head.isascii() else sum(_CJK_FIRST <= char <= _CJK_LAST for char in head)
    other = letters - ascii_letters + (_CJK_LETTERS - 1) * cjk
    if letters and ascii_letters < other:
        return True
    words = [word.group() for word in islice(_WORD.finditer(text), _LANGUAGE_WORDS)]
    foreign = sum(
        word in _FOREIGN or not (word.isascii() or _ACCENTED.isdisjoint(word)) for word in words
    )
    return foreign >= 2 and foreign > sum(word in _ENGLISH for word in words)


def _names(text: str) -> Iterator[re.Match[str]]:
    """`_FILE_NAME`'s matches in the text, as `finditer` gives them, tried only where one may start.

    A search with the pattern tries it at every character (~0.1 ms for 2,000 of them); the clues
    are found by a scan for "@" and "." instead, and the pattern is tried at the "@" or where the
    path around the extension starts (read backwards from it, on the reversed text)."""
    name_at, path_back = _compiled(_FILE_NAME).match, _compiled(_PATH).match
    back, end = text[::-1], 0
    for clue in _compiled(_NAME_CLUE).finditer(text):
        start = clue.start()
        if start < end:
            continue  # inside the name just found
        if clue.group() != "@":
            behind = len(text) - start  # where the reversed text goes on before the extension
            path = path_back(back, behind, len(text) - end)
            start -= path.end() - behind if path else 0
        name = name_at(text, start)
        if name is not None:
            end = name.end()
            yield name


def _without_names(text: str) -> str | None:
    """The text with file names blanked, but the kept ones; `None` if nothing but names is left.

    One pass: the names and the words between them are found together."""
    if "." not in text and "@" not in text:  # every name holds one or the other
        return text if _LETTER.search(text) else None
    pieces: list[str] = []
    asks, last = False, 0
    for name in _names(text):
        between = text[last : name.start()]
        asks = asks or _LETTER.search(between) is not None
        kept = _compiled(_KEPT_NAME).search(name.group()) is not None
        pieces += (between, name.group() if kept else " " * len(name.group()))
        last = name.end()
    if not asks and _LETTER.search(text, last) is None:
        return None
    pieces.append(text[last:])
    return "".join(pieces)


def _command(text: str) -> bool:
    """Whether the prompt opens with a command line: its shape, and no English outside quotes."""
    line = _COMMAND_LINE.match(text)
    if line is None and "-" in text.partition("\n")[0]:
        line = _compiled(_FLAGGED_LINE).match(text)
    if line is None:
        return False
    unquoted = _compiled(_QUOTED).sub(" ", line.group())
    return not any(word.group() in _ENGLISH for word in _WORD.finditer(unquoted))


def _with_making(scores: dict[str | None, float]) -> dict[str, float]:
    """The scores with the verb of making counted for what is made."""
    making = scores.pop(_MAKE, 0.0)
    typed = {kind: score for kind, score in scores.items() if kind is not None}
    if making:
        made = [
            kind for kind, score in typed.items() if kind not in _NOT_MADE and score >= _MADE_SCORE
        ]
        target = max(made, key=typed.__getitem__) if made else _IMPLEMENTATION
        typed[target] = typed.get(target, 0.0) + making
    return typed


def prompt_task_type(text: str) -> str:
    """The wire value of the task type the prompt asks for; `unknown` when unsure.

    The learned model (`classify_model.py`) decides, with the rules' answer as one of its
    features.
    """
    return classify_model.load().answer(text[:MAX_PROMPT_CHARS], rules_task_type(text))


def rules_task_type(text: str) -> str:
    """The rules' answer alone: the task type their cues name, or `unknown` when unsure."""
    cleaned = _TAGS.sub(" ", text[:MAX_PROMPT_CHARS]).lower().strip()
    attached = _ATTACHED.match(cleaned)
    cleaned = cleaned[attached.end() :] if attached else cleaned
    if _foreign(cleaned):
        # Its own words, by the cues of its language; the English words it borrows do not count.
        # Imported here: most prompts are English, and a hook process pays for what it imports.
        from mosaicstack_telemetry_agents.classify_languages import foreign_scores

        return _decided(_with_making(foreign_scores(cleaned[: _head_end(cleaned)])))
    named = _without_names(cleaned)
    if named is None:
        return _UNKNOWN  # file names alone ("CONVENTIONS.md") ask nothing
    cleaned = named
    if _command(cleaned):
        # A command typed as the prompt, or pasted with its output: no request of its own.
        return _UNKNOWN
    # A request stated in the head is read alone. A prompt that is all paste is read whole, for
    # what a pasted error or log asks: debugging (other words in a paste are someone else's).
    return _decided(_with_making(_scores(cleaned, _head_end(cleaned)) or _pasted(cleaned)))


def _decided(scores: dict[str, float]) -> str:
    """The type with the highest sum, if it reaches `_MIN_SCORE` and leads by `_MIN_MARGIN`."""
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if not ranked:
        return _UNKNOWN
    best, score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if score < _MIN_SCORE or score - runner_up < _MIN_MARGIN:
        return _UNKNOWN
    return best


def classify_prompt(text: str) -> TaskType:
    """The task type the prompt asks for, or `TaskType.UNKNOWN` when unsure."""
    from mosaicstack_telemetry.enums import TaskType

    return TaskType(prompt_task_type(text))
