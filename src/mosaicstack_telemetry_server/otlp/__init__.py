"""The OTLP/HTTP receiver: Claude Code, Codex and Gemini CLI telemetry in, tasks out.

`routes.py` serves `POST /v1/logs` (and answers `/v1/metrics` and `/v1/traces`), `wire.py`
decodes and encodes OTLP with the OpenTelemetry project's own classes, `records.py` flattens a
request into records, one module per agent reads its record shapes (`claude_code.py`,
`codex.py`, `gemini_cli.py`), `calls.py` turns them into calls and prompts, `tasks.py` turns a
closed task into a `TaskCompletionEvent`, and `closer.py` closes idle tasks in the background.
The open tasks live in storage (`storage/_otlp_*.py`), shared by every server process.
"""
