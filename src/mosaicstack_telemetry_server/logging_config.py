"""Structured logs: every line on stderr is JSON, its `time` in RFC 3339 UTC with milliseconds.

The access log, one line per request, is written by `access_log.py`. The libraries that may log
while the server runs (uvicorn, the PostgreSQL driver and its pool, asyncio) go through the same
JSON formatter, which also blanks any password a URL or a `password=` setting in a line might
carry.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from mosaicstack_telemetry_server.storage import redact_url

__all__ = ["JsonFormatter", "configure_logging", "redact_secrets", "rfc3339_utc"]

# Loggers logging at the level asked for.
_OWN_LOGGERS = ("mosaicstack_telemetry_server", "uvicorn")
# Libraries that may log while serving: at WARNING at least, since psycopg's pool logs every
# connection checkout at INFO (three lines per request).
_LIBRARY_LOGGERS = ("psycopg", "asyncio")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_PASSWORD_SETTING = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|\S+)")


def redact_secrets(text: str) -> str:
    """`text` with the password of every URL in it, and every `password=...`, blanked."""
    text = _URL.sub(lambda match: redact_url(match[0]), text)
    return _PASSWORD_SETTING.sub(r"\1***", text)


def rfc3339_utc(created: float) -> str:
    """A record's creation time as RFC 3339 in UTC with milliseconds: `2026-11-30T17:23:11.042Z`.

    UTC with its zone, not local time: lines from processes on several hosts sort and compare.
    """
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": rfc3339_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Libraries format their own messages (a driver's error may quote a DSN).
            "message": redact_secrets(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = redact_secrets(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the server's logs, uvicorn's and its libraries' to stderr as JSON lines.

    Ours and uvicorn's at `level`; psycopg's and asyncio's at `level` but never below WARNING.
    Anything else that logs reaches the root logger, which gets the same handler unless the
    host application configured it already (then its setup is kept).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    for name in (*_OWN_LOGGERS, *_LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric if name in _OWN_LOGGERS else max(numeric, logging.WARNING))
        logger.propagate = False
    # Their children log through them (an earlier setup may have given them handlers).
    for name in ("uvicorn.error", "uvicorn.access", "psycopg.pool"):
        child = logging.getLogger(name)
        child.handlers.clear()
        child.propagate = True
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
