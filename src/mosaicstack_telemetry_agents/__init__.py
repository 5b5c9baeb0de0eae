"""Agents report without code: `send`, Claude Code hooks and history imports.

Everything here is client side: it needs the SDK and the `[agents]` extra (genai-prices,
platformdirs, rich), never the server's dependencies. Each harness's log format lives in one
module of `harnesses/`, as pure functions from lines to tasks.
"""

__all__: list[str] = []
