"""A plain `pip install mosaicstack-telemetry` (the SDK alone) in a fresh virtual environment.

The command is installed with the SDK, so it must work there as far as it can: `--help` and
`--version`, `send` on the SDK alone, and one friendly line (no traceback) for what needs an
extra. Real install, real venv: a package missing from the wheel or an eager import of a server
dependency fails here, where a test inside the development venv could not see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sdk_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh venv holding the project without extras."""
    venv = tmp_path_factory.mktemp("sdk-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin"


def _run(
    bin_dir: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOSAIC_", "COVERAGE_"))}
    return subprocess.run(
        [str(bin_dir / "mosaic-telemetry"), *args],
        input=stdin, capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
        check=False,
    )  # fmt: skip


def test_the_sdk_alone_installs_none_of_the_extras(sdk_only: Path) -> None:
    listed = subprocess.run(
        [str(sdk_only / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"httpx", "pydantic", "mosaicstack-telemetry"} <= names
    assert not names & {"fastapi", "uvicorn", "psycopg", "numpy", "genai-prices", "rich"}


def test_help_and_version_work_without_a_traceback(sdk_only: Path) -> None:
    shown = _run(sdk_only, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "serve" in shown.stdout
    assert "send" in shown.stdout
    assert "Traceback" not in shown.stderr
    version = _run(sdk_only, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("mosaic-telemetry ")


@pytest.mark.parametrize("command", ["serve", "keys", "migrate", "demo", "report", "prune"])
def test_a_server_command_is_one_friendly_line(sdk_only: Path, command: str) -> None:
    result = _run(sdk_only, command)
    assert result.returncode == 1
    assert result.stderr == "the server needs: pip install 'mosaicstack-telemetry[server]'\n"


def test_send_works_on_the_sdk_alone_and_spools_for_a_down_server(
    sdk_only: Path, tmp_path: Path
) -> None:
    event = {
        "instance_id": str(uuid.uuid4()),
        "task_type": "implementation",
        "complexity": "medium",
        "harness": "claude_code",
        "model": "claude-sonnet-4",
        "provider": "anthropic",
        "task_duration_ms": 1000,
        "estimated_input_tokens": 0,
        "estimated_output_tokens": 0,
        "actual_input_tokens": 10,
        "actual_output_tokens": 5,
        "estimated_cost_usd_micros": 0,
        "actual_cost_usd_micros": 7,
        "quality_gate_passed": True,
        "quality_gates_run": [],
        "quality_gates_failed": [],
        "context_compactions": 0,
        "context_rotations": 0,
        "context_utilization_final": 0.5,
        "outcome": "success",
        "retry_count": 0,
    }
    result = _run(
        sdk_only,
        "send",
        "-",
        "--server-url",
        "http://127.0.0.1:9",
        "--instance-id",
        event["instance_id"],
        stdin=json.dumps(event),
        env={
            "HOME": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path / ".cache"),
            "MOSAIC_TELEMETRY_API_KEY": "0" * 64,
        },
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    spooled = list((tmp_path / ".cache" / "mosaicstack-telemetry").rglob("*.events"))
    assert spooled, result.stderr
