#!/usr/bin/env bash
# Sets up the project and runs the end-to-end demo on a throwaway embedded SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh server
exec .venv/bin/mosaic-telemetry demo "$@"
