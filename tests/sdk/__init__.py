"""Tests of the SDK (mosaicstack_telemetry)."""
