"""The benchmark suite runs and measures correct results (tiny sizes, our runtime only).

Never a test of speed: it fails only when the suite breaks or a workload's results are
wrong (an output, a lost timer, a missing metric), whatever the numbers are.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import WORKLOADS
from bench.metrics import metrics_for
from tests.conftest import ADMIN_URL, AMQP_URL

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_run_measures_every_workload_with_correct_results(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = {**os.environ, "DF_BENCH_DATABASE_ADMIN_URL": ADMIN_URL, "DF_AMQP_URL": AMQP_URL}
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--mode", "smoke", "--systems", "ours"),
            *("--output", str(output), "--log-dir", str(tmp_path / "logs")),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-5000:]
    results = json.loads(output.read_text())

    assert results["failed_checks"] == []
    ours = results["systems"]["ours"]
    assert ours["status"] == "ok"
    assert set(ours["workloads"]) == set(WORKLOADS) - {"ceilings"}
    for name, workload in ours["workloads"].items():
        assert "error" not in workload, (name, workload.get("traceback"))
        assert workload["checks"], name
    rows = {(row["workload"], row["metric"]) for row in results["rows"]}
    for metric in metrics_for(tuple(results["sizes"]["w3_fan_out"])):
        assert (metric.workload, metric.key) in rows, metric
    for row in results["rows"]:
        assert row["ours"] is not None, row
        assert not math.isnan(row["ours"]), row
    assert ours["workloads"]["W5"]["metrics"]["fires_lost"] == 0
    table_header = [line for line in completed.stdout.splitlines() if line.startswith("workload")]
    assert table_header, completed.stdout[-3000:]
