"""The public surface is exactly the reference's: names, enum values, signatures, typing marker."""

from __future__ import annotations

import dataclasses
import inspect
from importlib import resources

import pytest

import mosaicstack_telemetry as sdk
from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskType,
    TelemetryClient,
)

REFERENCE_NAMES = {
    "TelemetryClient",
    "TelemetryConfig",
    "EventBuilder",
    "TaskCompletionEvent",
    "PredictionQuery",
    "PredictionResponse",
    "PredictionData",
    "TokenDistribution",
    "CorrectionFactors",
    "QualityPrediction",
    "PredictionMetadata",
    "BatchEventRequest",
    "BatchEventResponse",
    "BatchEventResult",
    "TaskType",
    "Complexity",
    "Harness",
    "Provider",
    "Outcome",
    "QualityGate",
    "RepoSizeCategory",
    "TelemetryError",
    "EventQueue",
    "PredictionCache",
}


def test_every_reference_name_is_exported() -> None:
    assert set(sdk.__all__) >= REFERENCE_NAMES
    assert set(sdk.__all__) - REFERENCE_NAMES == {
        "__version__",
        "API_VERSION",
        "SCHEMA_VERSION",
        "TelemetryStats",
        # Issue 20, additive: the budget status and the check before a task.
        "BudgetCheck",
        "BudgetStatus",
        "check_budgets",
        "estimated_cost_p90",
    }
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_versions_are_the_contracts() -> None:
    assert (sdk.__version__, sdk.API_VERSION, sdk.SCHEMA_VERSION) == ("0.1.0", "v1", "1.0")


def test_enum_values_are_the_wire_strings() -> None:
    assert {m.name: m.value for m in TaskType} == {
        "PLANNING": "planning",
        "IMPLEMENTATION": "implementation",
        "CODE_REVIEW": "code_review",
        "TESTING": "testing",
        "DEBUGGING": "debugging",
        "REFACTORING": "refactoring",
        "DOCUMENTATION": "documentation",
        "CONFIGURATION": "configuration",
        "SECURITY_AUDIT": "security_audit",
        "UNKNOWN": "unknown",
    }
    assert [m.value for m in Complexity] == ["low", "medium", "high", "critical"]
    assert [m.value for m in Harness] == [
        "claude_code",
        "opencode",
        "kilo_code",
        "aider",
        "api_direct",
        "ollama_local",
        "custom",
        "unknown",
    ]
    assert [m.value for m in Provider] == [
        "anthropic",
        "openai",
        "openrouter",
        "ollama",
        "google",
        "mistral",
        "custom",
        "unknown",
    ]
    assert [m.value for m in Outcome] == ["success", "failure", "partial", "timeout"]
    assert [m.value for m in QualityGate] == [
        "build",
        "lint",
        "test",
        "coverage",
        "typecheck",
        "security",
    ]
    assert [m.value for m in RepoSizeCategory] == ["tiny", "small", "medium", "large", "huge"]
    for enum in (TaskType, Complexity, Harness, Provider, Outcome, QualityGate, RepoSizeCategory):
        assert issubclass(enum, str)


def test_client_methods_have_the_reference_shapes() -> None:
    for name in ("start", "stop", "track", "get_prediction", "refresh_predictions_sync"):
        assert not inspect.iscoroutinefunction(getattr(TelemetryClient, name))
    for name in ("start_async", "stop_async", "refresh_predictions"):
        assert inspect.iscoroutinefunction(getattr(TelemetryClient, name))
    # Issue 20, additive: budgets fetched and cached like predictions.
    for name in ("get_budget_status", "refresh_budgets_sync", "check_budget"):
        assert not inspect.iscoroutinefunction(getattr(TelemetryClient, name))
    assert inspect.iscoroutinefunction(TelemetryClient.refresh_budgets)
    assert isinstance(TelemetryClient.queue_size, property)
    assert isinstance(TelemetryClient.is_running, property)
    params = inspect.signature(sdk.EventBuilder.tokens).parameters
    assert all(
        params[p].kind is inspect.Parameter.KEYWORD_ONLY
        for p in ("estimated_in", "estimated_out", "actual_in", "actual_out")
    )
    quality = inspect.signature(sdk.EventBuilder.quality).parameters
    assert quality["passed"].default is inspect.Parameter.empty
    assert quality["gates_run"].default is None


def test_issue_7_additions_have_their_agreed_shapes() -> None:
    # Pinned: the `mosaic-telemetry send` command and the Claude Code hook build on these.
    fields = {f.name: f.default for f in dataclasses.fields(sdk.TelemetryConfig)}
    assert fields["shutdown_timeout_seconds"] == 2.0
    assert fields["spool_dir"] is None
    assert fields["spool_max_bytes"] == 64 * 1024 * 1024
    flush = inspect.signature(TelemetryClient.flush).parameters
    assert flush["timeout"].default is None
    assert inspect.iscoroutinefunction(TelemetryClient.flush_async)
    assert inspect.signature(TelemetryClient.flush_async).parameters["timeout"].default is None
    stats = TelemetryClient(sdk.TelemetryConfig(enabled=False)).stats()
    assert dataclasses.is_dataclass(stats)
    assert {f.name for f in dataclasses.fields(stats)} >= {
        "tracked",
        "sent",
        "rejected",
        "invalid",
        "evicted",
        "spooled",
        "unspooled",
        "retries",
        "failed_batches",
        "queue_size",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.sent = 1  # type: ignore[misc]


def test_telemetry_error_is_an_exception() -> None:
    assert issubclass(sdk.TelemetryError, Exception)


def test_package_is_typed() -> None:
    assert resources.files("mosaicstack_telemetry").joinpath("py.typed").is_file()


def test_every_public_name_has_a_docstring() -> None:
    for name in sdk.__all__:
        obj = getattr(sdk, name)
        if inspect.isclass(obj):
            assert obj.__doc__, name
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and (
                    inspect.isfunction(member) or isinstance(member, property)
                ):
                    assert member.__doc__, f"{name}.{attr}"
