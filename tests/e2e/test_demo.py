"""`mosaic-telemetry demo`: the whole loop runs, prints the predictions, keeps data on request."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from mosaicstack_telemetry import (
    CorrectionFactors,
    PredictionData,
    PredictionMetadata,
    PredictionResponse,
    QualityPrediction,
    TokenDistribution,
)
from mosaicstack_telemetry_server.demo import add_demo_arguments, prediction_table, run_demo
from mosaicstack_telemetry_server.demo_data import DEMO_QUERIES
from mosaicstack_telemetry_server.storage import open_storage

CLI = Path(sys.executable).with_name("mosaic-telemetry")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    return parser.parse_args(list(argv))


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run_demo(_args(*argv), console=Console(file=out, width=120))
    return status, out.getvalue()


def _stored(url: str) -> int:
    storage = open_storage(url)
    try:
        return storage.count_events()
    finally:
        storage.close()


def _cli(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # TMPDIR points the throwaway database into tmp_path, so the test can see it go.
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "120"}
    return subprocess.run(
        [str(CLI), "demo", *argv], capture_output=True, text=True, env=env, timeout=120
    )


def test_demo_in_process_shows_every_prediction_with_a_fallback_and_a_no_data_row() -> None:
    status, output = _run("--events", "300", "--seed", "1")

    assert status == 0
    assert "300 new rows stored" in output
    assert "Predictions from the telemetry of all instances" in output
    for demo in DEMO_QUERIES:
        assert demo.query.model in output
    assert re.search(r"fallback level [123]: ", output)
    assert "no data: " in output
    assert re.search(r"security_audit, high.*none\s+none", output, re.DOTALL)


def test_demo_through_the_cli_exits_zero_and_removes_its_throwaway_database(
    tmp_path: Path,
) -> None:
    done = _cli("--events", "200", tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "200 new rows stored" in done.stdout
    assert re.search(r"fallback level [123]: ", done.stdout)
    assert "no data: " in done.stdout
    assert "The data is kept" not in done.stdout
    assert not list(tmp_path.glob("mosaic-telemetry-demo-*"))


def test_keep_leaves_the_sqlite_file_and_prints_the_serve_command(tmp_path: Path) -> None:
    done = _cli("--events", "120", "--keep", tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    [kept] = tmp_path.glob("mosaic-telemetry-demo-*/telemetry.db")
    url = f"sqlite:///{kept}"
    assert f"mosaic-telemetry serve --database {url}" in done.stdout
    assert f"keys create --database {url} --instance-id " in done.stdout
    assert _stored(url) == 120


def test_database_option_stores_events_in_the_named_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.db"

    status, output = _run("--events", "150", "--database", str(path))

    assert status == 0
    assert _stored(f"sqlite:///{path}") == 150
    assert f"serve --database sqlite:///{path}" in output


def test_same_seed_on_the_same_database_stores_nothing_twice(tmp_path: Path) -> None:
    path = str(tmp_path / "again.db")
    assert _run("--events", "100", "--seed", "9", "--database", path)[0] == 0

    status, output = _run("--events", "100", "--seed", "9", "--database", path)

    assert status == 0
    assert "0 new rows stored (100 in the database" in output
    assert _stored(f"sqlite:///{path}") == 100


@pytest.mark.postgres
def test_database_option_accepts_a_postgresql_url(postgres_url: str) -> None:
    status, output = _run("--events", "100", "--instances", "2", "--database", postgres_url)

    assert status == 0
    assert "2 instances" in output
    assert _stored(postgres_url) == 100


@pytest.mark.parametrize(
    "argv",
    [
        ["--events", "0"],
        ["--events", "100001"],
        ["--events", "many"],
        ["--instances", "0"],
        ["--instances", "21"],
    ],
)
def test_out_of_range_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _args(*argv)
    assert exited.value.code == 2


def test_table_formats_large_counts_and_long_durations() -> None:
    tokens = TokenDistribution(p10=1_500_000, p25=2, median=3, p75=4, p90=2_500_000)
    data = PredictionData(
        input_tokens=tokens,
        output_tokens=TokenDistribution(p10=999, p25=1, median=1, p75=1, p90=9_999),
        cost_usd_micros={"median": 12_345_678},
        duration_ms={"median": 3_900_000},
        correction_factors=CorrectionFactors(input=1.0, output=1.0),
        quality=QualityPrediction(gate_pass_rate=0.5, success_rate=0.25),
    )
    meta = PredictionMetadata(
        sample_size=40,
        fallback_level=2,
        confidence="medium",
        last_updated=datetime.now(UTC),
        fallback_note=None,
    )
    out = io.StringIO()

    Console(file=out, width=120).print(
        prediction_table([(DEMO_QUERIES[0], PredictionResponse(prediction=data, metadata=meta))])
    )

    text = out.getvalue()
    assert "in 1.5M-2.5M" in text
    assert "out 999-10.0k" in text
    assert "$12.35" in text
    assert "1h 05m" in text
    assert "25%" in text
    assert f"fallback level 2: {DEMO_QUERIES[0].shows}" in text
