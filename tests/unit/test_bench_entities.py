"""W9, signals to entities: Temporal's entity workflows in the same rows as ours, and the
workload's name (W8 is kept for a future scale-out workload)."""

from __future__ import annotations

from bench.__main__ import OUR_ORDER
from bench.config import WORKLOADS
from bench.report import build_rows, metrics_for


def test_the_entity_rows_set_temporals_workflows_beside_ours_with_the_ratio() -> None:
    ours = {"one_entity_signals_per_s": 1000.0, "many_entities_signals_per_s": 600.0}
    temporal = {"one_entity_signals_per_s": 250.0, "many_entities_signals_per_s": 300.0}
    results = {
        "systems": {
            "ours": {"workloads": {"W9": {"metrics": ours}}},
            "dbos": {"workloads": {"W9": {"skipped": "no entities"}}},
            "temporal": {"workloads": {"W9": {"metrics": temporal}}},
        }
    }

    rows = {row["metric"]: row for row in build_rows(results, (1000,)) if row["workload"] == "W9"}

    assert rows["one_entity_signals_per_s"]["temporal"] == 250.0
    assert rows["one_entity_signals_per_s"]["ours_vs_temporal"] == 4.0
    assert rows["many_entities_signals_per_s"]["ours_vs_temporal"] == 2.0
    assert rows["one_entity_signals_per_s"]["ours_vs_dbos"] is None


def test_no_workload_is_called_w8_which_the_tracker_keeps_for_scale_out() -> None:
    names = set(WORKLOADS) | set(OUR_ORDER) | {m.workload for m in metrics_for((1000,))}

    assert "W9" in names
    assert "W8" not in names
