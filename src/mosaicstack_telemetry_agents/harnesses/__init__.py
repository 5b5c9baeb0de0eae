"""One module per harness log format: pure functions from lines to `Task`s.

A format change in someone else's program touches one file here. Every parser ignores unknown
line types, skips and counts broken lines, and never raises on bad input.
"""

__all__: list[str] = []
