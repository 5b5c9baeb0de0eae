#!/usr/bin/env bash
# Sets up the project and runs every quality gate, then the test suite with branch coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff check";        ruff check src tests bench
echo "== ruff format";       ruff format --check src tests bench
echo "== mypy --strict";     mypy --strict src
echo "== bandit";            bandit -q -c pyproject.toml -r src
# One worker a core (PYTEST_WORKERS to choose), a test file to a worker: a file's fixtures stay
# in one process, and every test already takes its own ports, PostgreSQL schema and files.
echo "== pytest";            python -m pytest --cov --cov-report=term -p no:cacheprovider \
    -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
