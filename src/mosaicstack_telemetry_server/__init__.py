"""The Telemetry API v1 server: ingestion, predictions and API keys."""

from mosaicstack_telemetry._version import __version__

__all__ = ["__version__"]
