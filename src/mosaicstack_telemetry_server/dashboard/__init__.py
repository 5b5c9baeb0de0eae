"""The web dashboard at `/dashboard`: sign in with a key, see what was spent, explore
predictions. Server-rendered pages and SVG charts, with every file in the package (no CDN, no
build step, no script)."""

from __future__ import annotations

from mosaicstack_telemetry_server.dashboard.routes import PREFIX, install_dashboard

__all__ = ["PREFIX", "install_dashboard"]
