"""The table's rows for a workload that is ours alone: its values, and its target as a limit."""

from __future__ import annotations

from typing import Any

from bench.report import build_rows


def results_with_replicas(three_over_one: float) -> dict[str, Any]:
    metrics = {
        "one_replica_orchestrations_per_s": 800.0,
        "three_replicas_orchestrations_per_s": 800.0 * three_over_one,
        "three_over_one": three_over_one,
        "one_replica_cpu_ms_per_orchestration": 2.4,
        "three_replicas_cpu_ms_per_orchestration": 2.6,
    }
    return {
        "systems": {
            "ours": {"workloads": {"W2R": {"metrics": metrics}}},
            "dbos": {"workloads": {"W2R": {"skipped": "ours alone"}}},
        }
    }


def test_three_replicas_meet_the_target_when_they_keep_nine_tenths_of_one() -> None:
    rows = {row["metric"]: row for row in build_rows(results_with_replicas(0.93), (1000,))}

    ratio = rows["three_over_one"]
    assert ratio["target"] == "≥ 0.9 x"
    assert ratio["target_met"] is True
    assert ratio["dbos"] is None
    assert ratio["ours_vs_dbos"] is None
    assert {key for key in rows if key.startswith(("one_", "three_"))} == {
        "one_replica_orchestrations_per_s",
        "three_replicas_orchestrations_per_s",
        "three_over_one",
        "one_replica_cpu_ms_per_orchestration",
        "three_replicas_cpu_ms_per_orchestration",
    }


def test_three_replicas_miss_the_target_below_nine_tenths_of_one() -> None:
    rows = {row["metric"]: row for row in build_rows(results_with_replicas(0.85), (1000,))}

    assert rows["three_over_one"]["target_met"] is False
