"""The cues of task types in languages other than English, for prompts `classify.py` finds foreign.

About two real prompts in five are not in English (Chinese and Polish ones among the blind set of
`held-out-3`). Their own words name the work as English ones do: 修复 and "napraw" are "fix",
添加 and "dodaj" are "add". Each cue is a word's stem, matched where a word starts (anywhere for
Chinese, Japanese and Korean, which put no space between words), with a weight, and scored as the
English cues are (`classify.py` `_MIN_SCORE`, `_MIN_MARGIN`).

Only words of the language count: an English word inside a foreign prompt ("pytest", "tests",
"config") is borrowed, often a name, and says less than the sentence around it, so a prompt that
names its work only in borrowed English words stays `unknown`.
The stems were written from the languages (what a developer types to ask for each kind of work),
not read off the labelled prompts; the figures on the labelled ones are in docs/integrations.md.
"""

# Russian cues are written in Cyrillic, whose letters ruff takes for look-alike Latin ones.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

# Imported by `classify.py` only once it runs, so these are there already. `_CJK_FIRST`: kana,
# CJK ideographs and Hangul start there (no Latin or Cyrillic letter does), and a stem in them
# is matched anywhere, as those scripts put no space between words. `_LEAD_BONUS`: what a cue
# that opens the request counts more. `_MAKE`: a verb of making, counted for what is made.
from mosaicstack_telemetry_agents.classify import _CJK_FIRST, _LEAD_BONUS, _MAKE, _T

__all__ = ["foreign_scores"]

_IMPL, _DEBUG, _REFAC, _TEST = _T.IMPLEMENTATION, _T.DEBUGGING, _T.REFACTORING, _T.TESTING
_REVIEW, _DOCS, _CONFIG, _PLAN = _T.CODE_REVIEW, _T.DOCUMENTATION, _T.CONFIGURATION, _T.PLANNING
_SECURITY, _UNKNOWN = _T.SECURITY_AUDIT, _T.UNKNOWN

# (task type, weight, stems separated by "|"): a stem names the work (2.0 and more) or leans
# to it (1.0, 1.5). Chinese, Japanese, Korean, Polish, Spanish, Portuguese, French, German, Russian.
_CUES: Sequence[tuple[str | None, float, str]] = (
    (
        _DEBUG,
        2.0,
        "修复|报错|错误|异常|崩溃|失败|不工作|不起作用|没有生效|错的|不对|不正确|エラー|バグ|不具合|오류|에러|버그|napraw|"
        "błąd|błęd|nie działa|wyjąt|ostrzeżeni|arregl|corrige|corrija|corriger|"
        "no funciona|não funciona|erreur|ne fonctionne pas|"
        "marche pas|plante|behebe|fehler|funktioniert nicht|исправь|"
        "исправить|ошибк|не работает|баг",
    ),
    (
        _DEBUG,
        1.0,
        "问题|为什么|无法|不能|解决|原因|没有办法|没办法|修正|なぜ|수정|왜|dlaczego|problem|popraw|"
        "por qué|por que|falla|falha|erro|problema|pourquoi|warum|почему|причин",
    ),
    (
        _IMPL,
        2.0,
        "实现|开发|実装|구현|zaimplementuj|implementuj|implementacj|implementa|"
        "implemente|implémente|implementier|реализ",
    ),
    # verbs of making count for what is made, as in English ("添加测试" is testing)
    (
        _MAKE,
        2.0,
        "添加|新增|增加|追加|추가|dodaj|agrega|añade|adicion|ajoute|hinzu|добавь|добавить",
    ),
    (
        _MAKE,
        1.0,
        "创建|写一个|编写|帮我写|生成|作成|作って|만들|stwórz|utwórz|napisz|crea|crie|crée|"
        "erstelle|создай|напиши",
    ),
    (_IMPL, 1.0, "功能|支持|funkcj|функци"),
    # carrying out a plan made before ("根据这个计划执行") is the doing, not the planning
    (_IMPL, 4.0, "这个计划|按计划|按照计划"),
    (_REVIEW, 1.0, "检查"),
    (_REFAC, 3.0, "重构|リファクタ|리팩|refaktor|refactoriz|refator|рефактор"),
    (
        _REFAC,
        1.5,
        "优化|简化|拆分|重命名|整理|簡略|uprość|przenieś|simplifica|simplifie|vereinfache|упрости",
    ),
    (_TEST, 2.5, "测试|单测|テスト|테스트|testy|testów|pruebas|testes|тест"),
    (
        _DOCS,
        2.5,
        "文档|注释|ドキュメント|コメント|문서|주석|dokumentacj|komentarz|documentación|"
        "documenta|documentação|comentario|comentário|dokumentation|"
        "kommentar|документац|комментари",
    ),
    (
        _CONFIG,
        2.0,
        "配置|安装|部署|依赖|环境变量|設定|インストール|デプロイ|설정|설치|배포|konfigur|"
        "zainstaluj|instalac|wdroż|wdrożeni|zależnoś|configura|"
        "instala|despliega|implanta|configur|installe|déploie|"
        "konfiguri|installier|настро|установ|развер",
    ),
    (
        _PLAN,
        2.0,
        "计划|规划|方案|设计|架构|計画|設計|계획|설계|zaplanuj|zaprojektuj|architektur|"
        "planifica|diseña|arquitectura|planeja|planifie|conçois|"
        "entwirf|plane|спланируй|спроектируй|архитектур",
    ),
    (
        _REVIEW,
        2.0,
        "审查|审核|代码评审|レビュー|리뷰|검토|przejrzyj|recenzj|revisa|revise|"
        "revisar|relis|überprüfe|проверь код|ревью",
    ),
    (
        _SECURITY,
        3.0,
        "安全|漏洞|セキュリティ|脆弱性|보안|취약|bezpieczeństw|podatnoś|seguridad|"
        "vulnerabilidad|segurança|sécurité|sicherheit|"
        "sicherheitslücke|безопасност|уязвим",
    ),
    (
        _UNKNOWN,
        2.0,
        "解释|是什么|什么意思|总结|介绍|提交|推送|説明|설명|wyjaśnij|wytłumacz|co robi|"
        "jak działa|explica|explique|erkläre|объясни",
    ),
)


# English words other languages took for the work itself: they name it there as in English
# (unlike "test", "config" or "readme", which name a file, a tool or a step as often).
_LOANWORDS: Sequence[tuple[str | None, float, str]] = (
    (_REFAC, 3.0, "refactor"),
    (_DEBUG, 2.0, "bug|debug"),
)


@cache
def _at_word_start(stem: str) -> re.Pattern[str]:
    return re.compile(r"(?<![^\W\d_])" + re.escape(stem))


def _found(stem: str, head: str) -> bool:
    if stem not in head:
        return False
    return stem[0] >= _CJK_FIRST or _at_word_start(stem).search(head) is not None


def foreign_scores(head: str) -> dict[str | None, float]:
    """Each task type's sum of the weights of its cues found in the (lower-cased) request.

    A cue that opens the request counts `_LEAD_BONUS` more, as an English verb there does."""
    scores: dict[str | None, float] = {}
    opening = head.lstrip()
    for kind, weight, stems in (*_CUES, *_LOANWORDS):
        found = [stem for stem in stems.split("|") if _found(stem, head)]
        if found:
            lead = _LEAD_BONUS if any(opening.startswith(stem) for stem in found) else 0.0
            scores[kind] = scores.get(kind, 0.0) + weight + lead
    return scores
