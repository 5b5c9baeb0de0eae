"""mosaicstack-telemetry: record what every finished agent task cost, predict the next one.

Everything public is re-exported here; the reference is `docs/api-reference.md`.
"""

from mosaicstack_telemetry._version import API_VERSION, SCHEMA_VERSION, __version__
from mosaicstack_telemetry.budget_check import BudgetCheck, check_budgets, estimated_cost_p90
from mosaicstack_telemetry.builder import EventBuilder
from mosaicstack_telemetry.cache import PredictionCache
from mosaicstack_telemetry.client import TelemetryClient
from mosaicstack_telemetry.config import TelemetryConfig
from mosaicstack_telemetry.enums import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskType,
)
from mosaicstack_telemetry.errors import TelemetryError
from mosaicstack_telemetry.models import (
    BatchEventRequest,
    BatchEventResponse,
    BatchEventResult,
    CorrectionFactors,
    PredictionData,
    PredictionMetadata,
    PredictionQuery,
    PredictionResponse,
    QualityPrediction,
    TaskCompletionEvent,
    TokenDistribution,
)
from mosaicstack_telemetry.models.budgets import BudgetStatus
from mosaicstack_telemetry.queue import EventQueue
from mosaicstack_telemetry.stats import TelemetryStats

__all__ = [
    "API_VERSION",
    "SCHEMA_VERSION",
    "BatchEventRequest",
    "BatchEventResponse",
    "BatchEventResult",
    "BudgetCheck",
    "BudgetStatus",
    "Complexity",
    "CorrectionFactors",
    "EventBuilder",
    "EventQueue",
    "Harness",
    "Outcome",
    "PredictionCache",
    "PredictionData",
    "PredictionMetadata",
    "PredictionQuery",
    "PredictionResponse",
    "Provider",
    "QualityGate",
    "QualityPrediction",
    "RepoSizeCategory",
    "TaskCompletionEvent",
    "TaskType",
    "TelemetryClient",
    "TelemetryConfig",
    "TelemetryError",
    "TelemetryStats",
    "TokenDistribution",
    "__version__",
    "check_budgets",
    "estimated_cost_p90",
]
