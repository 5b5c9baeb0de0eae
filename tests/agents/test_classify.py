"""A prompt's task type, guessed locally: right when it answers, `unknown` when unsure."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import SAMPLES
from _labelled_prompts import DATA, Labelled, load, quoted_text
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TaskType
from mosaicstack_telemetry_agents.classify import (
    MAX_PROMPT_CHARS,
    classify_prompt,
    prompt_task_type,
    rules_task_type,
)
from mosaicstack_telemetry_agents.classify_model import load as load_model

# The goal (issue 18): on prompts it never saw, right on 75% of those it labels, labelling 40%.
MIN_PRECISION = 0.75
MIN_COVERAGE = 0.40
# The first held-out splits (tests/agents/data/README.md): 41 of their 50 prompts are ours.
UNSEEN = ("held-out", "fresh-2")
# Real prompts from eight licensed repositories whose owners gave nothing to an earlier split,
# labelled and committed before the classifier first ran on them (tests/agents/data/README.md).
# Measured blind once (28 right of 45 labelled); its mistakes were read since and the rules
# changed from them (the cues of other languages among them), so it is development data now.
# What docs/integrations.md publishes of it is pinned below, so a change of the rules that moves
# it must publish it anew.
HELD_OUT_3 = {"prompts": 164, "repositories": 8, "labelled": 71, "right": 56}
# Real prompts from thirteen more licensed repositories, drawn and labelled by someone who never
# opened the classifier, committed before it first ran on them, and measured once with the rules
# above frozen (tests/agents/data/README.md): the goal is not met there either.
HELD_OUT_4 = {"prompts": 212, "repositories": 13, "labelled": 77, "right": 51}
# The splits the rules were written or changed on (`held-out-3` too, since).
DEVELOPMENT = ("dev", "fresh-1", "dev-2", "dev-3", "held-out-3")
# `held-out-5` measured the first model blind (82.9% right, labelling 20.0%); it is trained on
# since, as every split but the newest blind one, so those figures are history (the docs keep them).
# Real prompts from 13 licensed repositories of 13 more owners, typed into Codex, Copilot,
# Claude Code, IBM Bob and Cursor (their logs, exports and SpecStory histories), drawn and
# labelled blind, committed, then
# measured once with the model retrained on every other split frozen (the data README).
HELD_OUT_6 = {"prompts": 207, "repositories": 13, "labelled": 29, "right": 26}
HELD_OUT = "held-out-6"
# Every split of real prompts drawn whole from repositories none of an earlier split's owners own.
BLIND_SPLITS = ("held-out-3", "held-out-4", "held-out-5", "held-out-6")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
# The confusion matrix's order and names, as docs/integrations.md prints them.
KINDS = (
    ("implementation", "impl"),
    ("debugging", "debug"),
    ("refactoring", "refac"),
    ("testing", "test"),
    ("code_review", "review"),
    ("documentation", "docs"),
    ("configuration", "config"),
    ("planning", "plan"),
    ("security_audit", "security"),
    ("unknown", "unknown"),
)
# Repositories whose chat histories may be quoted, with their licence (the README's tables).
LICENSED = {
    "Aeell/ai-text-detector": "MIT",
    "Akash-Modi104/trading-bot": "MIT",
    # dev-3 (built as held-out-2)
    "Aider-AI/aider": "Apache-2.0",
    "closup/process-xbrl": "MIT",
    "robin-collins/gpt-crawler": "ISC",
    "twardoch/twat-search": "MIT",
    "AFI-Protocol/afi-core": "MIT",
    "Aquaticat/Monochromatic": "Apache-2.0",
    "151henry151/my-webserver-setup": "MIT",
    "twardoch/twat-mp": "MIT",
    "robin-collins/Roo-Cline": "Apache-2.0",
    # dev-2
    "maloneype/yposfgold-community-platform": "ISC",
    "Asphyksia/OpenCoder": "MIT",
    "AlexShchuka/mozgoslav": "MIT",
    "MarcVilaseca/fantasy-betting-backend": "MIT",
    "Rinku8381/seraphine-hybrid-v1": "MIT",
    # held-out-3
    "MichaelPaulukonis/polychrome.p5": "MIT",
    "BillWan-zzzyyy/alpamayo": "Apache-2.0",
    "Bucur21/PaperBites": "MIT",
    "destyler/destyler": "MIT",
    "design4pro/mcp-rag-server": "MIT",
    "ChrisGVE/MunsellSpace": "MIT",
    "barbarachbc/esphome-workshop": "MIT",
    "kevinslin/skillz": "MIT",
    # held-out-4
    "Hornsyld/economic-bc-connector": "MIT",
    "808wrld/Mock-Data-Factory": "MIT",
    "daviswhitehead/chef-chopsky": "CC0-1.0",
    "iDorgham/DocGen": "MIT",
    "ThatHunky/gryag": "MIT",
    "BenjaminScholtens/Afterburn": "MIT",
    "Tre-Seibert/FishtownWebDesign": "ISC",
    "0-auth/zero-auth": "MIT",
    "Singingkettle/ChangShuoRadioRecognition": "Apache-2.0",
    "4D-Happy-Hour/4d-happy-hour": "MPL-2.0",
    "hpm27/agente-bsc-rag": "MIT",
    "AgentPhoenix7/bing-wallpaper": "Apache-2.0",
    "AIL2Lab/AIL2-Builder": "Apache-2.0",
    # dev-5
    "139QQ/news_look": "MIT",
    "7MPra/ytdlpSpout": "MIT",
    "Applied-Science-Academy-ASA/Minori-colmi_smart_ring_data_collect": "MIT",
    "BitFinding/evm-proxy-tools": "MIT",
    "bk202042/codelab-ai-genkit-rag": "Apache-2.0",
    "bpawnzZ/open-webui-mod1": "MIT",
    "BrokenPants/react-study": "MIT",
    "Bucharest-Squad/MENA-mobile-ci-cd": "Apache-2.0",
    "Consiliency/Flutter-Structurizr": "MIT",
    "CooKingThe1st/contact_maintain": "MIT",
    "DICKY1987/eafix-modular": "MIT",
    "DiegoBarrosA/pulso-vivo-sales-monitor": "MIT",
    "DrDevEli/booklensapp": "ISC",
    "Excellencedev/yin-minecraft-mod": "CC0-1.0",
    "ExpressedAi/October": "Apache-2.0",
    "Firedogs2x/Houdoku-2": "MIT",
    "geometor/seer": "MIT",
    "GiuseppeRudi/routly-planner": "MIT",
    "gyasis/PromptChain": "MIT",
    "Haervwe/open-webui-tools": "MIT",
    "Hss2019/MultiTalk": "Apache-2.0",
    "HypeRankCode/hyperank": "MIT",
    "IngoS11/EmailBuddy": "MIT",
    "JanDalhuysen/clash_royale_ai": "ISC",
    "Jaron1238/r2dreamer": "MIT",
    "Jpotter702/redidtrend": "MIT",
    "Lain2077/python-prodj-link": "Apache-2.0",
    "MOHSINNM/boja": "MIT",
    "MRSI-HFMR-Group-Vienna/Synthetic_MRSI": "MIT",
    "Parthiban4264/GW-Doc": "MIT",
    "pichsy/download-manager": "Apache-2.0",
    "sabelosimelane/prompt_sail_2": "MIT",
    "Team3176/Code_2024": "BSD-3-Clause",
    "The-Research-Scientist-Pod/pathfinding-visualizer": "MIT",
    "Todofine0/storm_con_aider": "MIT",
    "WaleedaRaza/pokerswound": "ISC",
    "WTWalters/neural-nexus-strategies": "ISC",
    # held-out-5
    "abestein/item_info": "ISC",
    "akilonx/avante.nvim": "Apache-2.0",
    "Aye-basota/se-toolkit-lab-5": "MIT",
    "Barqly/barqly-vault": "MIT",
    "CakeCrusher/opengpts-monorepo": "MIT",
    "ChiMechMcp/chimechmcp": "MIT",
    "Consistos/VigInt": "MIT",
    "DigitalKin-ai/aider_kinchercheur": "Apache-2.0",
    "DominiqueLoyer/systemFactChecking": "MIT",
    "DreamyChloe/MMM-Miku": "MIT",
    "exa-labs/exa-js": "MIT",
    "FastLED/FastLED": "MIT",
    "Itsme23476/App-interface": "MIT",
    "ivi374forivi/cognitive-archaelogy-tribunal": "MIT",
    "JobiJoba/SchaerbeekMunicipality": "MIT",
    "JOOORN/QuackGPT": "Apache-2.0",
    "ktsu-dev/BlastMerge": "MIT",
    "PierrunoYT/expense-tracker": "MIT",
    "PonlokSimeng2/kfa_mobile_nu": "ISC",
    "specstoryai/keyframe-blogger": "MIT",
    "specstoryai/tutorials": "MIT",
    "specstoryai/zero-to-product-video-hero": "MIT",
    "technocrat/census": "MIT",
    "yixian-huang/cocli": "MIT OR Apache-2.0",
    # dev-6
    "A1cy/HiveCodeCli": "Apache-2.0",
    "abusyahmie/nrf52dk-dht22": "MIT",
    "albertoviceconti/advanced-dusseldorfer-calculator": "Apache-2.0",
    "amcquistan/gen-ai-assisted-amazing-scientist-ui": "MIT",
    "ArnaudDeploiement/lms-go-spec-driven-dev": "ISC",
    "Bilal1262/BobForBots": "MIT",
    "brightnucleus/collection": "MIT",
    "chazzofalf/image_analysis_and_sd": "MIT",
    "chloebrett/slay": "MIT",
    "chunrui-qashier/md-http-server": "MIT",
    "daniifrim/10-box-os": "Apache-2.0",
    "DEBDEEP-BANERJ2E/agentforge": "MIT",
    "EdofEngland/code_butler": "Apache-2.0",
    "EdouardZemb/test-framework": "MIT",
    "EmperorRAG/my-projects-monorepo": "MIT",
    "epics-containers/p47-services": "Apache-2.0",
    "EthanD004/Threadkeeper": "ISC",
    "fco71/whosonset": "ISC",
    "Filipe-Sacca/rag-lab": "MIT",
    "getmany-software/llm-guard": "MIT",
    "gxm11/RPGXP-Crafting-System": "MIT",
    "Jackela/AI-Recruitment-Clerk": "MIT",
    "JaydenXsoe/ocodex": "Apache-2.0",
    "jkassemi/friendly_names": "MIT",
    "jvr0x/dgx-spark-bench": "MIT",
    "Kantrum/kantrum.github.io": "MIT",
    "Krminfinity/ojisan-hair-pluck-collection": "MIT",
    "linroger/ClipQueue": "MIT",
    "Luxcium/vigilant-codex-k3a": "MIT",
    "merkky123/nova-bob-standupsync": "MIT",
    "merlins550/devrim": "MIT",
    "Monotoba/OpenPrintKit": "MIT",
    "mta-tech/seeknal": "Apache-2.0",
    "Nosheen-asim/first-phase-hackathon": "ISC",
    "pookNast/loopkit": "MIT",
    "programujzai/webinar-demo": "ISC",
    "rbrady/federal-magic-plugin": "Apache-2.0",
    "rjewls/Life-Goal": "MIT",
    "RyanLisse/big3": "MIT",
    "SilviuSavu/g3": "MIT",
    "SproutSeeds/coda": "MIT",
    "Tar-ive/CADS-Visualizer": "MIT",
    "tgf-between-your-legs/rooport": "MIT",
    # held-out-6
    "alading-2/GodotCSharpECSStruct_Open": "MIT",
    "Anshsurana123/dev-lens-IBM-BOB": "MIT",
    "brusic/reddit-condenser": "Apache-2.0",
    "bumpy-croc/ai-trading-bot": "MIT",
    "CS3219-AY2526Sem1/cs3219-ay2526s1-project-g07": "MIT",
    "ElekDTomi/parking-system": "ISC",
    "FaiqaRashid/scriptclean-a11y-guard": "MIT",
    "fast-gateway-protocol/browser": "MIT",
    "Gordondalos/mail-agent": "ISC",
    "Hoper-J/cpolar-connect": "MIT",
    "morberg/f1-chart": "MIT",
    "pattern-stack/task-patterns": "MIT",
    "Python-AI-Solutions/agentic-neurodata-conversion": "MIT",
}
# The languages of the blind splits' prompts (ISO 639-1).
LANGUAGES = ("en", "zh", "pl", "pt", "es", "fr", "it", "de", "ja", "ru", "ar", "hu", "tr")
# Licences that let a prompt be quoted with attribution (tests/agents/data/README.md).
PERMISSIVE = {
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "CC0-1.0",
    "CC-BY-4.0",
    "MPL-2.0",
    "MIT OR Apache-2.0",
}
# What a quoting row's `source` starts with: the kind of history it was read from.
QUOTED = (
    "aider-chat-history:",
    "aider-input-history:",
    "specstory-history:",
    "aider-commit-message:",
    # dev-6 and held-out-6: the other harnesses' logs and exports (tests/agents/data/README.md)
    "aider-llm-history:",
    "bob-task-export:",
    "claude-code-history:",
    "claude-code-hook-log:",
    "claude-code-transcript:",
    "cline-task-export:",
    "codex-cli-history:",
    "codex-cli-rollout:",
    "copilot-chat-export:",
    "roo-task-export:",
    "speckit-prompt-history:",
)


@functools.cache
def _labelled() -> Labelled:
    return load()


def _rows() -> list[dict[str, Any]]:
    return _labelled().rows


def _figures(
    rows: Iterable[dict[str, Any]], answer: Callable[[str], str] = prompt_task_type
) -> tuple[float, float, int]:
    """(precision on the prompts labelled, share labelled, prompts)."""
    rows = list(rows)
    answers = [(answer(row["text"]), row["label"]) for row in rows]
    labelled = [(got, truth) for got, truth in answers if got != "unknown"]
    right = sum(got == truth for got, truth in labelled)
    return right / len(labelled), len(labelled) / len(rows), len(rows)


def _repo(row: dict[str, Any]) -> str:
    """The repository a quoting row's `source` names (`kind:owner/name@commit`)."""
    return str(row["source"].partition(":")[2].partition("@")[0])


def _owner(row: dict[str, Any]) -> str:
    return _repo(row).partition("/")[0]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_labelled_set_holds_task_types_sources_and_the_documented_split() -> None:
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines()]
    wire = {member.value for member in TaskType}
    assert len(rows) >= 140
    digests = [row.get("sha256") or _sha256(row["text"]) for row in rows]
    # One prompt, one row; the same few words typed by two people ("hi") are two prompts.
    assert len(set(zip(digests, (row["source"] for row in rows), strict=True))) == len(rows)
    for row, digest in zip(rows, digests, strict=True):
        assert row["label"] in wire
        assert row["source"]
        # A quoted sample is referenced, never copied (harness-samples/README.md).
        assert ("sample" in row) == row["source"].startswith("harness-samples/")
        if "sample" in row:
            assert "text" not in row
            assert row["source"] == "harness-samples/" + row["sample"]
        if row["source"].startswith(QUOTED):
            repo, commit = _repo(row), row["source"].partition("@")[2]
            assert repo in LICENSED, f"{repo}: licence not checked (tests/agents/data/README.md)"
            assert row.get("licence", LICENSED[repo]) == LICENSED[repo]
            assert row.get("commit", commit).startswith(commit)
        if row["split"] in ("dev", "held-out"):
            held = bytes.fromhex(digest)[0] % 3 == 0
            assert row["split"] == ("held-out" if held else "dev")
        elif row["split"] in ("fresh-1", "fresh-2"):
            assert row["source"].startswith("aider-chat-history:")
        else:
            assert row["split"] in ("dev-2", "dev-3", "dev-5", "dev-6", *BLIND_SPLITS)
            assert row["source"].startswith(QUOTED)
            assert row["licence"]
            assert row["commit"]
            assert len(row["text"]) <= MAX_PROMPT_CHARS  # the excerpt the classifier reads
    # Split by repository: no repository gives prompts to both dev-2 and dev-3 (held-out-2).
    sides = {(_repo(row), row["split"]) for row in rows if row["source"].startswith(QUOTED)}
    dev2 = {repo for repo, split in sides if split == "dev-2"}
    assert dev2
    assert not dev2 & {repo for repo, split in sides if split == "dev-3"}


@pytest.mark.parametrize("split", BLIND_SPLITS)
def test_a_blind_split_shares_no_repository_or_owner_with_any_other(split: str) -> None:
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines()]
    quoted = [row for row in rows if row["source"].startswith(QUOTED)]
    held = [row for row in quoted if row["split"] == split]
    seen = {_repo(row) for row in quoted if row["split"] != split}
    assert held
    assert not {_repo(row) for row in held} & seen
    assert not {_owner(row) for row in held} & {repo.partition("/")[0] for repo in seen}
    counts = Counter(_repo(row) for row in held)
    assert len(counts) >= 8
    assert max(counts.values()) <= 0.25 * len(held)  # no repository decides the figures
    for row in held:
        assert row["licence"] in PERMISSIVE
        assert row["licence"] == LICENSED[_repo(row)]
        assert len(row["commit"]) == 40
        assert row["source"].endswith("@" + row["commit"][:12])
        assert row["path"]
        assert row["language"] in LANGUAGES


def test_each_prompt_quoted_from_the_harness_samples_is_the_text_it_was_labelled_on() -> None:
    quoting = [row for row in _labelled().rows if "sample" in row]
    if _labelled().unresolved:
        pytest.skip(
            f"{_labelled().unresolved} labelled prompts quote harness samples, not found at "
            f"{SAMPLES} (CI has them beside the checkout); the figures are on the rest"
        )
    assert len(quoting) == 23
    for row in quoting:
        assert quoted_text(row) == row["text"]  # its SHA-256 checked on the way


def test_a_sample_changed_since_labelling_fails_rather_than_measuring_other_words(
    tmp_path: Path,
) -> None:
    line = {"type": "user", "uuid": "u1", "message": {"content": [{"type": "text", "text": "b"}]}}
    (tmp_path / "t.jsonl").write_text(json.dumps(line) + "\n", "utf-8")
    row = {"sample": "t.jsonl", "uuid": "u1", "sha256": _sha256("b")}
    assert quoted_text(row, tmp_path) == "b"
    with pytest.raises(AssertionError, match="text changed"):
        quoted_text({**row, "sha256": _sha256("a")}, tmp_path)
    with pytest.raises(AssertionError, match="no user line"):
        quoted_text({**row, "uuid": "u2"}, tmp_path)


def test_on_the_first_held_out_prompts_mostly_written_by_us_it_meets_the_goal() -> None:
    # The rules' figures: the model trains on these prompts (docs/integrations.md).
    unseen = [row for row in _rows() if row["split"] in UNSEEN]
    precision, coverage, count = _figures(unseen, rules_task_type)
    assert count >= 42  # 50 with the harness samples, 42 without
    assert precision >= MIN_PRECISION, f"precision {precision:.2f} on {count} prompts"
    assert coverage >= MIN_COVERAGE, f"coverage {coverage:.2f} on {count} prompts"


def test_on_the_few_real_prompts_it_was_never_tuned_on_it_does_not_fall_below_the_goal() -> None:
    # Nine prompts (one without the harness samples) since the rows of unlicensed repositories
    # were dropped: too few to measure the goal, so this guards against a regression only
    # (tests/agents/data/README.md).
    real = [
        row for row in _rows() if row["split"] in UNSEEN and not row["source"].startswith("written")
    ]
    precision, coverage, count = _figures(real, rules_task_type)
    assert count >= (1 if _labelled().unresolved else 9)
    assert precision >= MIN_PRECISION, f"precision {precision:.2f} on {count} real prompts"
    assert coverage >= MIN_COVERAGE, f"coverage {coverage:.2f} on {count} real prompts"


def _confusion(answers: list[tuple[str, str]]) -> str:
    """The confusion matrix as the docs print it: rows the hand label, columns the answer."""
    lines = [
        "| true ↓ / answered → | " + " | ".join(short for _, short in KINDS) + " |",
        "|---|" + "---:|" * len(KINDS),
    ]
    for truth, _ in KINDS:
        got = [answer for label, answer in answers if label == truth]
        cells = [str(got.count(kind)) if got.count(kind) else "·" for kind, _ in KINDS]
        name = truth.replace("_", " ")
        lines.append(f"| {name} ({len(got)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _published(
    split: str, name: str, pinned: dict[str, int], answer: Callable[[str], str] = prompt_task_type
) -> None:
    """The split's row (as `name`) and confusion matrix in the docs are what `answer` gives."""
    rows = [row for row in _rows() if row["split"] == split]
    answers = [(row["label"], answer(row["text"])) for row in rows]
    labelled = [(label, answer) for label, answer in answers if answer != "unknown"]
    right = sum(label == answer for label, answer in labelled)
    measured = {
        "prompts": len(rows),
        "repositories": len({_repo(row) for row in rows}),
        "labelled": len(labelled),
        "right": right,
    }
    assert measured == pinned, "publish the new figures in docs/integrations.md"
    docs = DOCS.read_text("utf-8")
    abstained = len(rows) - len(labelled)
    assert (
        f"| {name} | {len(rows)} | {measured['repositories']} | "
        f"{len(labelled)} ({len(labelled) / len(rows):.1%}) | "
        f"{right} ({right / len(labelled):.1%}) | {abstained} ({abstained / len(rows):.1%}) |"
    ) in docs
    assert _confusion(answers) in docs


def test_held_out_6_measured_blind_meets_the_precision_goal_as_published() -> None:
    # Measured once, after its labels were committed and the model trained without it: right on
    # 89.7% of what it labels (the goal, 75%, met), labelling 14.0% (the goal, 40%, not met).
    # A change of the model or its threshold that moves these must publish them as development
    # figures, and a new blind split must measure it.
    _published(HELD_OUT, "**held-out-6, measured blind** (`main` at `116f603`)", HELD_OUT_6)
    rows = [row for row in _rows() if row["split"] == HELD_OUT]
    precision, _, _ = _figures(rows)
    assert precision >= MIN_PRECISION


def test_the_rules_alone_on_held_out_6_are_what_the_docs_say() -> None:
    _published(
        HELD_OUT,
        "held-out-6, the rules alone (the same prompts)",
        {"prompts": 207, "repositories": 13, "labelled": 71, "right": 46},
        rules_task_type,
    )


def test_held_out_5s_blind_figures_stay_published_as_history() -> None:
    # The model that measured them (`1341b4e`) is gone: held-out-5 is trained on since.
    docs = DOCS.read_text("utf-8")
    assert (
        "| held-out-5, measured blind (`main` at `1341b4e`, before it was trained on) "
        "| 410 | 24 | 82 (20.0%) | 68 (82.9%) | 328 (80.0%) |"
    ) in docs


def _script(name: str) -> Any:
    """A module of `scripts/`, loaded from its file."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_held_out_6_is_never_trained_on() -> None:
    train = _script("train_classifier")
    assert train.BLIND == (HELD_OUT,)
    assert set(BLIND_SPLITS) - set(train.BLIND) == {"held-out-3", "held-out-4", "held-out-5"}
    assert load_model().threshold == pytest.approx(0.61)
    # A model that saw held-out-6 would recall it, as it recalls what it was trained on: dev-6,
    # drawn by the same collectors from the same kinds of logs, it labels 26% of, 97% right.
    recalled, recalled_coverage, _ = _figures(row for row in _rows() if row["split"] == "dev-6")
    blind, blind_coverage, _ = _figures(row for row in _rows() if row["split"] == HELD_OUT)
    assert recalled > 0.95
    assert recalled_coverage > 0.2
    assert blind < 0.95
    assert blind_coverage < 0.2


def test_the_figures_published_for_the_rules_on_held_out_4_are_what_they_give_now() -> None:
    # The rules alone, unchanged since they were measured blind on held-out-4 (66.2% right,
    # 36.3% labelled); the model trains on held-out-4 since, so its figures there flatter it.
    _published(
        "held-out-4",
        "held-out-4, the rules alone, measured blind (`main` at `a40d159`)",
        HELD_OUT_4,
        rules_task_type,
    )


def test_the_figures_published_for_held_out_3_are_what_the_rules_give_now() -> None:
    # Development data since it was read (78.9% right, 43.3% labelled): the goal is met only on
    # prompts the rules were changed from, so it is not asserted here.
    _published(
        "held-out-3", "held-out-3, the rules (development since read)", HELD_OUT_3, rules_task_type
    )


def test_the_development_figures_published_beside_held_out_3_are_what_the_rules_give_now() -> None:
    docs = DOCS.read_text("utf-8")
    for split in ("dev-3", "dev-2"):
        rows = [row for row in _rows() if row["split"] == split]
        labelled = [row for row in rows if rules_task_type(row["text"]) != "unknown"]
        right = sum(rules_task_type(row["text"]) == row["label"] for row in labelled)
        assert (
            f"| {split}, the rules (development) | {len(rows)} | "
            f"{len({_repo(row) for row in rows})} | "
            f"{len(labelled)} ({len(labelled) / len(rows):.1%}) | "
            f"{right} ({right / len(labelled):.1%}) |"
        ) in docs, split


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Write unit tests for the date parser", "testing"),
        ("please refactor the session module, no behaviour change", "refactoring"),
        ("add a Dockerfile for local development", "configuration"),
        ("write a README for this project", "documentation"),
        ("add a button that exports the table as CSV", "implementation"),
        ("Failed to compile\n./src/app.tsx\nError: Expected a semicolon", "debugging"),
        ("continue", "unknown"),
        ("what does this function do?", "unknown"),
        # rules added on dev-2 and dev-3 (tests/agents/data/README.md)
        ("npm run dev", "unknown"),
        ('git commit -m "fix: the login bug"', "unknown"),
        ("python -m app.cli q x -n 1\nTraceback (most recent call last):", "unknown"),
        ("We have new engines that should have default configs in config.py", "unknown"),
        ("make -v short for --verbose", "implementation"),  # English: not a command
        ("pytest fails with ImportError: cannot import name 'Settings'", "debugging"),
        ("CONVENTIONS.md", "unknown"),  # a file's name alone asks nothing
        ("In CONVENTIONS.md, reorder the lists", "documentation"),
        ("can you please resolve these lint errors", "debugging"),
        ("i still don't see the parentheses on negative numbers, it's wrong", "debugging"),
        ("@PRD.md @README.md @Style_Guide.md please launch the dev server", "unknown"),
        ("please add a rule to the mdc file to always answer in English", "documentation"),
        ("Create a file test_file.py that prints hello", "implementation"),
        ("commit and push to github", "unknown"),
        ("does the new settings page conform to the style guide?", "code_review"),
        # rules added on held-out-3, read since (docs/integrations.md)
        ("Now please write a commit message for these changes", "unknown"),
        ("Implement the plan as specified, it is attached for your reference.", "implementation"),
        ("Please format this report in markdown.", "documentation"),
        ("in markdown, can i specify image size?", "unknown"),
        ("benchmark/benchmark.py:60:15: F821 undefined name 'List'", "debugging"),
        ("the modal did not go away after I clicked Create Account", "debugging"),
        ("can you adjust the config code to be as simple as before", "unknown"),  # a thing
        ("add one more feature in the registration - there should be 2 sections", "implementation"),
    ],
)
def test_the_request_decides_and_a_verb_of_making_counts_for_what_is_made(
    prompt: str, expected: str
) -> None:
    assert rules_task_type(prompt) == expected


def test_words_in_a_paste_after_the_request_do_not_decide() -> None:
    prompt = "make an api documentation file for these endpoints:\n" + (
        "NIST AI Security Assessment: scans for vulnerabilities, CVEs and leaked API keys.\n" * 5
    )
    assert rules_task_type(prompt) == "documentation"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("修复登录页面的报错", "debugging"),
        (
            "帮我给 dynamic 的测试也加上 cleanup 吧",
            "testing",
        ),  # Chinese, though half its letters are Latin
        ("根据这个计划执行修改", "implementation"),  # carry out this plan
        ("请你设计一个计划，把当前的输入改成只使用前摄像头", "planning"),  # noqa: RUF001
        ("这个数值是什么意思？", "unknown"),  # noqa: RUF001
        ("dodaj przycisk, który eksportuje tabelę do CSV", "implementation"),
        ("serwer nie działa", "debugging"),
        ("zrób refactoring kodu, posprzątaj niepotrzebne pliki", "refactoring"),  # a loanword
        ("Mon application plante au démarrage, peux-tu regarder pourquoi ?", "debugging"),
        ("Crea una función hello world en un archivo nuevo", "implementation"),
        ("Удалось понять причину бага?", "debugging"),  # noqa: RUF001
        ("テストを追加してください", "testing"),
    ],
)
def test_a_prompt_in_another_language_is_read_by_the_cues_of_its_language(
    prompt: str, expected: str
) -> None:
    assert rules_task_type(prompt) == expected


def test_english_words_borrowed_by_another_language_do_not_decide() -> None:
    # "readme", "dockerfile", "pytest", "tests": a file, a tool, a folder, as often as the work;
    # the English cues would read them, the sentence around them says nothing of the kind.
    french = "Peux-tu regarder le fichier README et le Dockerfile ?"
    japanese = "下記のプロジェクトの内容を理解して、pytest の tests を書いてください"
    assert rules_task_type(french) == "unknown"
    assert rules_task_type(japanese) == "unknown"


def test_the_cues_of_other_languages_are_lower_case_stems_of_known_task_types() -> None:
    # They are matched on the lower-cased prompt: a capital in a stem would never match.
    from mosaicstack_telemetry_agents import classify_languages

    wire = {member.value for member in TaskType}
    stems = []
    for kind, weight, table in (*classify_languages._CUES, *classify_languages._LOANWORDS):
        assert kind is None or kind in wire  # None: a verb of making
        assert weight > 0
        stems += table.split("|")
    assert all(stem and stem == stem.lower() and stem.strip() == stem for stem in stems)
    assert len(stems) == len(set(stems)), [s for s, n in Counter(stems).items() if n > 1]


def test_only_the_first_max_prompt_chars_are_read() -> None:
    pasted = "x " * (MAX_PROMPT_CHARS // 2 - 8) + "traceback"  # ends 7 characters before the cut
    assert rules_task_type(pasted) == "debugging"
    assert rules_task_type("x " * 4 + pasted) == "unknown"  # now it ends past the cut


def _cue_words() -> list[str]:
    """The words and pieces of the cue table, and what its patterns match around them."""
    from mosaicstack_telemetry_agents import classify

    words = {"the", "a", "to", "it", "this", "is", "i", "am", "404", "line 3, in", "pr #12"}
    for cue in classify._CUES:
        words.update(cue[2])
        words.update(re.findall(r"[a-z'/.-]+", cue[3]))
    return sorted(words)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_cue_words()), min_size=1, max_size=10))
def test_every_match_of_a_cue_holds_one_of_its_needles(words: list[str]) -> None:
    # The needles let a cue be skipped uncompiled; a needle missing from a match would make the
    # classifier miss that cue.
    from mosaicstack_telemetry_agents import classify

    text = " ".join(words)
    for _, _, needles, pattern in classify._CUES:
        if re.search(pattern, text):
            assert any(needle in text for needle in needles), (pattern, text)


# Pieces of paths and of the words around them: names, extensions, separators, "@", and letters
# and digits beyond ASCII (`\w` holds them).
_NAME_PIECES = (
    *"ab_-./\\@ \t\n:'é²Ⅻ",
    *("py", "pyi", "md", "mdc", "readme", "config", "e.g.", "v1.2", "x.py.bak", ".py", "@src/"),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_NAME_PIECES), max_size=24).map("".join))
def test_file_names_tried_only_where_a_path_starts_are_the_names_found_anywhere(text: str) -> None:
    # Names are tried only at an "@" or where the path around an extension starts, which spares
    # trying the pattern at every character; the greedy path is what makes the names the same.
    from mosaicstack_telemetry_agents import classify

    guard = r"(?<![\w./\\-])"
    assert guard in classify._FILE_NAME
    anywhere = re.compile(classify._FILE_NAME.replace(guard, "", 1))
    found = [name.span() for name in classify._names(text)]
    assert found == [name.span() for name in anywhere.finditer(text)]


# Pieces of first lines: command words, flags, dashes that are none, quotes, lines, addresses.
_LINE_PIECES = (
    *"$ \t\n-.x",
    *(
        "git",
        "make",
        "npm run",
        "tool",
        "--",
        "-x",
        "the",
        "e-mail",
        "'q'",
        '"fix it"',
        "https://a.b",
    ),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_LINE_PIECES), max_size=16).map("".join))
def test_a_flag_is_looked_for_only_when_the_first_line_holds_a_dash(text: str) -> None:
    # Looking for a flag reads the whole first line, so it is skipped where none can be.
    from mosaicstack_telemetry_agents import classify

    if re.match(classify._FLAGGED_LINE, text) is not None:
        assert "-" in text.partition("\n")[0]


# No deadline: time is measured in bench/classify.py, not under a loaded test run's tracer.
@settings(deadline=None)
@given(st.text(max_size=5000))
def test_any_text_gives_a_task_type_and_never_raises(text: str) -> None:
    kind = classify_prompt(text)
    assert isinstance(kind, TaskType)
    assert prompt_task_type(text) == kind.value


@settings(deadline=None)
@given(st.text(min_size=MAX_PROMPT_CHARS, max_size=3 * MAX_PROMPT_CHARS))
def test_what_follows_the_first_max_prompt_chars_never_changes_the_answer(text: str) -> None:
    assert prompt_task_type(text) == prompt_task_type(text[:MAX_PROMPT_CHARS])


def test_the_cross_validation_script_reads_prompts_as_the_classifier_does() -> None:
    # scripts/classify_cv.py gives the grouped cross-validation published in docs/integrations.md
    # from the classifier's own cue tables: a change of their shape must not break it unseen.
    cv = _script("classify_cv")
    assert "opens" in "".join(cv.cue_hits("refactor the session module"))
    assert "foreign" in cv.cue_hits("修复登录页面的报错")
    assert cv.cue_hits("npm run dev") == {"no request"}
    assert cv.group({"source": "written: modelled on agent prompts"}) == "written"
    assert cv.group({"source": "specstory-history:Bucur21/PaperBites@7a7c53c5a688"}) == "Bucur21"
    labels = sorted({member.value for member in TaskType})
    rows = [
        {"text": text, "label": label}
        for text, label in [("fix the bug", "debugging"), ("write tests", "testing")] * 3
    ]
    features = {id(row): cv.cue_hits(row["text"]) for row in rows}
    predict = cv.logistic(rows, features, labels)
    assert predict(rows[0])[0] == "debugging"
    assert predict(rows[1])[0] == "testing"


@pytest.mark.parametrize(
    ("file", "split", "count"),
    [
        ("held_out_4_second_labels.jsonl", "held-out-4", 212),
        ("dev_5_second_labels.jsonl", "dev-5", 200),
        ("held_out_6_second_labels.jsonl", "held-out-6", 207),
    ],
)
def test_a_second_reader_labelled_alike_so_the_goal_is_within_a_readers_reach(
    file: str, split: str, count: int
) -> None:
    # A second labeller, given the same written rules and the texts only (neither the first
    # labels nor the classifier's answers), labelled every prompt of held-out-4 and held-out-6,
    # and 200 of dev-5 drawn at random: what they agree on is what a classifier can hope to be
    # right on.
    second = {
        row["sha256"]: row["label"]
        for row in map(json.loads, DATA.with_name(file).read_text("utf-8").splitlines())
    }
    rows = [row for row in _rows() if row["split"] == split and _sha256(row["text"]) in second]
    pairs = [(row["label"], second[_sha256(row["text"])]) for row in rows]
    assert len(pairs) == len(second) == count
    agree = sum(first == other for first, other in pairs)
    typed = [(first, other) for first, other in pairs if other != "unknown"]
    right = sum(first == other for first, other in typed)
    expected = Counter(first for first, _ in pairs)
    chance = sum(expected[k] * n for k, n in Counter(o for _, o in pairs).items()) / len(pairs) ** 2
    kappa = (agree / len(pairs) - chance) / (1 - chance)
    docs = DOCS.read_text("utf-8")
    assert (
        f"agree on {agree} of {len(pairs)} prompts ({agree / len(pairs):.1%}, Cohen's κ "
        f"{kappa:.2f})"
    ) in docs
    assert (
        f"right on {right} of the {len(typed)} it typed ({right / len(typed):.1%}, labelling "
        f"{len(typed) / len(pairs):.1%})"
    ) in docs
