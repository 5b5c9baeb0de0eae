"""The SDK's version and the contract versions it speaks."""

from __future__ import annotations

__version__ = "0.1.0"
API_VERSION = "v1"
SCHEMA_VERSION = "1.0"
