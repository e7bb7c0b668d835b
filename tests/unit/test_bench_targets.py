"""Issue 21's targets in the table: ratios within one run, against every peer measured, a
named peer, or the machine's own ceiling."""

from __future__ import annotations

from typing import Any

from bench.report import build_rows


def results(
    workload: str, metrics: dict[str, dict[str, float]], **ceilings: float
) -> dict[str, Any]:
    return {
        "ceilings": {"metrics": ceilings},
        "systems": {
            system: {"workloads": {workload: {"metrics": values}}}
            for system, values in metrics.items()
        },
    }


def rows_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["metric"]: row for row in build_rows(data, (1000,))}


def test_w1_through_the_activities_service_is_held_to_the_round_trip_ceiling_of_the_run() -> None:
    data = results(
        "W1",
        {"ours": {"activities_per_s": 270.0}, "dbos": {"activities_per_s": 400.0}},
        round_trip_step_ceiling_per_s=300.0,
    )

    row = rows_of(data)["activities_per_s"]

    assert row["ours_vs_ceiling"] == 0.9
    assert row["target_met"] is True
    assert row["target"].startswith("≥ 0.8x ceiling 1 commit + 1 round trip")
    assert row["ours_vs_dbos"] == 0.68  # reported, and no target of its own


def test_w1_misses_its_target_below_eight_tenths_of_the_ceiling() -> None:
    data = results("W1", {"ours": {"activities_per_s": 200.0}}, round_trip_step_ceiling_per_s=300.0)

    assert rows_of(data)["activities_per_s"]["target_met"] is False


def test_w1_is_not_judged_when_the_run_measured_no_ceilings() -> None:
    data = results("W1", {"ours": {"activities_per_s": 200.0}})

    row = rows_of(data)["activities_per_s"]
    assert row["target_met"] is None
    assert row["ours_vs_ceiling"] is None


def test_a_local_activity_must_beat_every_peer_measured_by_half_again() -> None:
    metrics = {
        "ours": {"local_activities_per_s": 300.0},
        "dbos": {"activities_per_s": 150.0},
        "celery": {"activities_per_s": 190.0},
        "temporal": {"activities_per_s": 20.0},
    }

    row = rows_of(results("W1", metrics))["local_activities_per_s"]

    assert row["target"] == "≥ 1.5x every peer"
    assert row["target_met"] is True
    assert row["required"] == {"dbos": 1.5, "celery": 1.5, "temporal": 1.5}
    metrics["celery"]["activities_per_s"] = 210.0
    assert rows_of(results("W1", metrics))["local_activities_per_s"]["target_met"] is False


def test_w2_asks_three_times_dbos_and_ten_times_celery_and_temporal_in_one_row() -> None:
    metrics = {
        "ours": {"orchestrations_per_s": 600.0},
        "dbos": {"orchestrations_per_s": 150.0},
        "celery": {"orchestrations_per_s": 50.0},
        "temporal": {"orchestrations_per_s": 12.0},
    }

    rows = [r for r in build_rows(results("W2", metrics), (1000,)) if r["workload"] == "W2"]
    row = next(r for r in rows if r["metric"] == "orchestrations_per_s")

    assert [r["metric"] for r in rows].count("orchestrations_per_s") == 1
    assert row["target"] == "≥ 3x dbos; ≥ 10x celery, temporal"
    assert row["target_met"] is True
    metrics["celery"]["orchestrations_per_s"] = 61.0
    row = rows_of(results("W2", metrics))["orchestrations_per_s"]
    assert row["target_met"] is False


def test_a_peer_that_did_not_run_is_left_out_of_every_peer() -> None:
    metrics = {
        "ours": {"cpu_ms_per_orchestration": 2.0},
        "dbos": {"cpu_ms_per_orchestration": 25.0},
        "temporal": {},
    }

    row = rows_of(results("W2", metrics))["cpu_ms_per_orchestration"]

    assert row["target"] == "≥ 10x every peer"
    assert row["target_met"] is True
    assert row["ours_vs_temporal"] is None


def test_w4_under_load_is_held_to_half_of_dbos_under_the_same_load() -> None:
    metrics = {
        "ours": {"idle_p50_ms": 5.0, "idle_p99_ms": 9.0, "loaded_p99_ms": 140.0},
        "dbos": {"idle_p50_ms": 12.0, "idle_p99_ms": 22.0, "loaded_p99_ms": 300.0},
        "temporal": {"idle_p50_ms": 40.0, "idle_p99_ms": 47.0, "loaded_p99_ms": 900.0},
    }

    rows = rows_of(results("W4", metrics))

    assert rows["loaded_p99_ms"]["target"] == "≥ 2x dbos"
    assert rows["loaded_p99_ms"]["target_met"] is True
    assert rows["idle_p50_ms"]["target_met"] is True
    assert rows["idle_p99_ms"]["target"] == "≤ 50 ms"


def test_w5_holds_ten_thousand_timers_to_50_ms_and_the_large_run_to_200_ms() -> None:
    metrics = {
        "ours": {
            "lateness_p99_ms": 60.0,
            "fires_lost": 0,
            "large_lateness_p99_ms": 150.0,
            "large_fires_lost": 0,
        }
    }

    rows = rows_of(results("W5", metrics))

    assert rows["lateness_p99_ms"]["target_met"] is False
    assert rows["large_lateness_p99_ms"]["target"] == "≤ 200 ms"
    assert rows["large_lateness_p99_ms"]["target_met"] is True
    assert rows["large_fires_lost"]["target_met"] is True


def test_w8s_takeover_is_bounded_by_a_lease_and_a_round_of_the_lease_it_ran_with() -> None:
    data = results("W8", {"ours": {"takeover_s": 3.9, "lease_seconds": 3.0}})

    row = rows_of(data)["takeover_s"]
    assert row["target"] == "≤ a lease + a round (ADR 27): 4 s"
    assert row["target_met"] is True
    assert row["required"] == {}
