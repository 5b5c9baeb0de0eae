"""Placeholder: the TelemetryClient is being written (see issue 2)."""

from __future__ import annotations

from mosaicstack_telemetry.config import TelemetryConfig

__all__ = ["TelemetryClient"]


class TelemetryClient:
    """The main entry point of the SDK."""

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
