"""The run's chart: every ratio of the table, against each peer and the ceiling, drawn once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plot import Bar, bars, write_chart
from bench.report import build_rows


def run() -> dict[str, Any]:
    return {
        "ceilings": {"metrics": {"round_trip_step_ceiling_per_s": 300.0}},
        "systems": {
            "ours": {"workloads": {"W1": {"metrics": {"activities_per_s": 240.0}}}},
            "dbos": {"workloads": {"W1": {"metrics": {"activities_per_s": 200.0}}}},
            "temporal": {"workloads": {"W1": {"metrics": {"activities_per_s": 20.0}}}},
        },
    }


def test_each_ratio_of_a_row_is_a_bar_with_what_its_target_asks() -> None:
    rows = [r for r in build_rows(run(), (1000,)) if r["metric"] == "activities_per_s"]

    assert bars(rows) == [
        Bar("W1 sequential activities/s", "dbos", 1.2, None),
        Bar("W1 sequential activities/s", "temporal", 12.0, None),
        Bar("W1 sequential activities/s", "ceiling", 0.8, 0.8),
    ]


def test_a_metric_that_two_rows_share_is_drawn_once() -> None:
    row = {
        "workload": "W2",
        "metric": "orchestrations_per_s",
        "label": "Hello cities",
        "ours_vs_dbos": 10.0,
        "required": {"dbos": 3},
    }

    assert bars([row, dict(row)]) == [Bar("W2 Hello cities", "dbos", 10.0, 3)]


def test_the_chart_is_a_png_written_where_asked(tmp_path: Path) -> None:
    path = tmp_path / "charts" / "run.png"

    assert write_chart(build_rows(run(), (1000,)), path, "test run") is True

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_chart_is_written_when_no_peer_or_ceiling_was_measured(tmp_path: Path) -> None:
    ours_alone = {
        "systems": {"ours": {"workloads": {"W1": {"metrics": {"activities_per_s": 1.0}}}}}
    }
    path = tmp_path / "run.png"

    assert write_chart(build_rows(ours_alone, (1000,)), path, "ours alone") is False
    assert not path.exists()
