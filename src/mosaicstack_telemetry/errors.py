"""Exceptions raised by the SDK outside the never-throwing `track()` path."""

from __future__ import annotations

__all__ = ["TelemetryError"]


class TelemetryError(Exception):
    """Base exception for telemetry client errors."""
