"""The table's rows for a workload that is ours alone (W8, scale-out): its values, its ratio's
target as a limit, and its takeover's target as a bound that follows the lease it ran with."""

from __future__ import annotations

from typing import Any

from bench.report import build_rows


def results_with_replicas(
    three_over_one: float, takeover_s: float = 4.2, lease_seconds: float = 5.0
) -> dict[str, Any]:
    metrics = {
        "one_replica_orchestrations_per_s": 800.0,
        "three_replicas_orchestrations_per_s": 800.0 * three_over_one,
        "three_over_one": three_over_one,
        "one_replica_cpu_ms_per_orchestration": 2.4,
        "three_replicas_cpu_ms_per_orchestration": 2.6,
        "takeover_s": takeover_s,
        "takeover_completed_s": takeover_s + 0.3,
        "lease_seconds": lease_seconds,
        "lease_round_s": round(lease_seconds / 3, 3),
    }
    return {
        "systems": {
            "ours": {"workloads": {"W8": {"metrics": metrics}}},
            "dbos": {"workloads": {"W8": {"skipped": "ours alone"}}},
        }
    }


def rows_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["metric"]: row for row in build_rows(data, (1000,)) if row["workload"] == "W8"}


def test_three_replicas_meet_the_target_when_they_keep_nine_tenths_of_one() -> None:
    rows = rows_of(results_with_replicas(0.93))

    ratio = rows["three_over_one"]
    assert ratio["target"] == "≥ 0.9 x"
    assert ratio["target_met"] is True
    assert ratio["dbos"] is None
    assert ratio["ours_vs_dbos"] is None
    assert set(rows) == {
        "one_replica_orchestrations_per_s",
        "three_replicas_orchestrations_per_s",
        "three_over_one",
        "one_replica_cpu_ms_per_orchestration",
        "three_replicas_cpu_ms_per_orchestration",
        "takeover_s",
        "takeover_completed_s",
    }


def test_three_replicas_miss_the_target_below_nine_tenths_of_one() -> None:
    rows = rows_of(results_with_replicas(0.85))

    assert rows["three_over_one"]["target_met"] is False


def test_the_takeover_is_held_to_a_lease_and_a_round_of_the_lease_it_ran_with() -> None:
    rows = rows_of(results_with_replicas(1.0, takeover_s=6.5))

    takeover = rows["takeover_s"]
    assert takeover["ours"] == 6.5
    assert takeover["target"] == "≤ a lease + a round (ADR 27): 6.67 s"
    assert takeover["target_met"] is True
    assert rows["takeover_completed_s"]["target"] == ""
    assert rows["takeover_completed_s"]["target_met"] is None


def test_a_takeover_longer_than_a_lease_and_a_round_misses_its_target() -> None:
    assert rows_of(results_with_replicas(1.0, takeover_s=6.8))["takeover_s"]["target_met"] is False
    shorter = rows_of(results_with_replicas(1.0, takeover_s=3.5, lease_seconds=2.0))

    assert shorter["takeover_s"]["target"].endswith(": 2.67 s")
    assert shorter["takeover_s"]["target_met"] is False


def test_a_takeover_without_its_lease_recorded_is_not_judged() -> None:
    data = results_with_replicas(1.0)
    del data["systems"]["ours"]["workloads"]["W8"]["metrics"]["lease_seconds"]

    takeover = rows_of(data)["takeover_s"]
    assert takeover["target"] == "≤ a lease + a round (ADR 27)"
    assert takeover["target_met"] is None
