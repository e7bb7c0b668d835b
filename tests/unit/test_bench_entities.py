"""W9, signals to entities: Temporal's entity workflows in the same rows as ours, and the
workloads' names (W8 is the scale-out workload, once called W2R)."""

from __future__ import annotations

from bench.__main__ import OUR_ORDER
from bench.config import WORKLOADS
from bench.metrics import metrics_for
from bench.report import build_rows


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


def test_w8_is_the_scale_out_workload_and_w9_the_entities_one() -> None:
    names = set(WORKLOADS) | set(OUR_ORDER) | {m.workload for m in metrics_for((1000,))}
    keys = {m.key for m in metrics_for((1000,)) if m.workload == "W8"}

    assert {"W8", "W9"} <= names
    assert "W2R" not in names
    assert {"three_over_one", "takeover_s", "takeover_completed_s"} <= keys
