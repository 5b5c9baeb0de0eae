"""Enumerations of the event schema 1.0; each `.value` is the lowercase string on the wire."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "Complexity",
    "Harness",
    "Outcome",
    "Provider",
    "QualityGate",
    "RepoSizeCategory",
    "TaskType",
]


class TaskType(str, Enum):
    """Type of work an agent task performed."""

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


class Complexity(str, Enum):
    """Task complexity level."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Harness(str, Enum):
    """Coding tool or execution environment that ran the task."""

    CLAUDE_CODE = "claude_code"
    OPENCODE = "opencode"
    KILO_CODE = "kilo_code"
    AIDER = "aider"
    API_DIRECT = "api_direct"
    OLLAMA_LOCAL = "ollama_local"
    CUSTOM = "custom"
    UNKNOWN = "unknown"


class Provider(str, Enum):
    """LLM provider that served the model."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENROUTER = "openrouter"
    OLLAMA = "ollama"
    GOOGLE = "google"
    MISTRAL = "mistral"
    CUSTOM = "custom"
    UNKNOWN = "unknown"


class Outcome(str, Enum):
    """Final result of a task."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    TIMEOUT = "timeout"


class QualityGate(str, Enum):
    """A quality gate a task may run."""

    BUILD = "build"
    LINT = "lint"
    TEST = "test"
    COVERAGE = "coverage"
    TYPECHECK = "typecheck"
    SECURITY = "security"


class RepoSizeCategory(str, Enum):
    """Repository size bucket, by approximate lines of code."""

    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    HUGE = "huge"
