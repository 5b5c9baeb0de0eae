"""The settings in words for people: each default, and the configuration table of the docs.

`docs/server.md`'s table is this module's output (`python -m
mosaicstack_telemetry_server.settings_doc`), and a test holds the two equal, so that the docs
say what `ServerSettings` does: the flags, variables, defaults and ranges.
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

from mosaicstack_telemetry_server.settings import ServerSettings, cli_of, env_names
from mosaicstack_telemetry_server.settings_text import bounds, format_number

__all__ = ["config_table", "default_text"]

_HEADER = "| Flag | Environment variable | Default | Range | Meaning |\n|---|---|---|---|---|\n"


def default_text(name: str) -> str:
    """A field's default as `--help` and the docs say it: `` `300` ``, `none`."""
    text = str(cli_of(name)["default_text"])
    if text:
        return text
    default = ServerSettings.model_fields[name].default
    shown = format_number(default) if isinstance(default, int | float) else str(default)
    return f"`{shown}`"


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else str(value)


def _allowed(name: str) -> str:
    """The values a field takes, in words: `1 to 1,000,000`, `above 0, at most 1,000,000`."""
    field = ServerSettings.model_fields[name]
    given = str(cli_of(name)["allowed"])
    if given:
        return given
    if get_origin(field.annotation) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(field.annotation))
    span = bounds(field)
    if span is not None:
        low, high, exclusive = span
        if exclusive:
            return f"above {_number(low)}, at most {_number(high)}"
        return f"{_number(low)} to {_number(high)}"
    lengths = [getattr(item, "min_length", None) for item in field.metadata]
    longest = [getattr(item, "max_length", None) for item in field.metadata]
    low_length = next((length for length in lengths if length is not None), 0)
    high_length = next(length for length in longest if length is not None)
    return f"{low_length} to {high_length} characters"


def _row(name: str) -> str:
    cli = cli_of(name)
    flag = f"`{cli['flag']} {cli['metavar']}`" if cli["metavar"] else f"`{cli['flag']}`"
    if cli["flag_note"]:
        flag += f" ({cli['flag_note']})"
    variables = ", then ".join(f"`{variable}`" for variable in env_names(name))
    if cli["env_note"]:
        variables += f" ({cli['env_note']})"
    meaning = ServerSettings.model_fields[name].description
    return f"| {flag} | {variables} | {default_text(name)} | {_allowed(name)} | {meaning} |\n"


def config_table() -> str:
    """The Markdown table of every `serve` setting, one row per field in the model's order."""
    return _HEADER + "".join(_row(name) for name in ServerSettings.model_fields)


if __name__ == "__main__":
    print(config_table(), end="")
