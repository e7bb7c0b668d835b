"""The benchmark's history: a line per run with the commit, the ceilings and the key ratios,
read back and printed as a table; the latest run published into docs/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import history
from bench.report import build_rows


def run(
    commit: str, w2_dbos: float, started_at: str = "2026-12-06T10:00:00+00:00"
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": started_at,
        "mode": "quick",
        "environment": {
            "ours": commit,
            "machine": {"cores": 2, "cpu": "test", "load_average_at_start": [0.52, 0.4, 0.3]},
        },
        "ceilings": {
            "metrics": {
                "postgres_commits_per_s_1_connection": 1800.0,
                "round_trip_step_ceiling_per_s": 300.0,
                "rabbitmq_confirmed_publishes_per_s_1_in_flight": 1400.0,
            }
        },
        "systems": {
            "ours": {
                "status": "ok",
                "workloads": {
                    "W1": {"metrics": {"activities_per_s": 250.0}},
                    "W2": {"metrics": {"orchestrations_per_s": 600.0}},
                },
            },
            "dbos": {
                "status": "ok",
                "workloads": {"W2": {"metrics": {"orchestrations_per_s": 600.0 / w2_dbos}}},
            },
        },
    }
    results["rows"] = build_rows(results, (1000,))
    return results


def test_a_runs_line_holds_its_commit_ceilings_and_the_ratios_of_rows_with_targets() -> None:
    line = history.entry(run("abc1234", 4.0))

    assert line["commit"] == "abc1234"
    assert line["ceilings"] == {
        "postgres_commits_per_s_1_connection": 1800.0,
        "round_trip_step_ceiling_per_s": 300.0,
    }
    assert line["rows"]["W2.orchestrations_per_s"] == {
        "ours": 600.0,
        "ratios": {"dbos": 4.0},
        "met": True,
    }
    assert line["rows"]["W1.activities_per_s"]["ratios"] == {"ceiling": 0.83}
    assert "W2.wall_s" not in line["rows"]  # no target: not a key ratio
    assert line["systems"] == {"ours": "ok", "dbos": "ok"}


def test_lines_are_appended_and_read_back_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history.append(history.entry(run("first", 4.0)), path)
    with path.open("a") as file:
        file.write("not json\n")
    history.append(history.entry(run("second", 2.5)), path)

    assert [line["commit"] for line in history.read(path)] == ["first", "second"]
    assert history.read(tmp_path / "missing.jsonl") == []


def test_the_table_shows_a_regression_between_two_runs() -> None:
    lines = [
        history.entry(run("first", 4.0)),
        history.entry(run("second (with uncommitted changes)", 2.5, "2026-12-07T09:30:00+00:00")),
    ]

    table = history.format_history(lines).splitlines()

    assert table[0].split()[:3] == ["run", "(UTC)", "commit"]
    assert "W2 /dbos" in table[0]
    first, second = table[2], table[3]
    assert first.startswith("2026-12-06 10:00  first")
    assert " 0.52 " in first
    assert " 4 " in first
    assert second.startswith("2026-12-07 09:30  second+")
    assert " 2.5 " in second
    assert first.rstrip().endswith("2/2")
    assert second.rstrip().endswith("1/2")  # W1 met, W2 missed


def test_publishing_copies_the_chart_and_appends_the_latest_runs_line(tmp_path: Path) -> None:
    results_dir, docs = tmp_path / "results", tmp_path / "docs"
    results_dir.mkdir()
    (results_dir / "latest.json").write_text(json.dumps(run("abc1234", 4.0)))
    (results_dir / "latest.png").write_bytes(b"\x89PNG\r\n\x1a\nchart")

    written = history.publish(results_dir, docs)

    assert written == [docs / "images" / "bench-quick.png", docs / "bench-history.jsonl"]
    assert (docs / "images" / "bench-quick.png").read_bytes().endswith(b"chart")
    assert [line["commit"] for line in history.read(docs / "bench-history.jsonl")] == ["abc1234"]


def test_w8s_ratio_is_read_from_older_lines_that_called_it_w2r() -> None:
    older = history.entry(run("older", 4.0))
    older["rows"]["W2R.three_over_one"] = {"ours": 0.841, "ratios": {}, "met": False}
    newer = history.entry(run("newer", 4.0))
    newer["rows"]["W8.three_over_one"] = {"ours": 1.02, "ratios": {}, "met": True}
    newer["rows"]["W8.takeover_s"] = {"ours": 4.87, "ratios": {}, "met": True}

    table = history.format_history([older, newer]).splitlines()

    assert "W8 3÷1" in table[0]
    assert "W8 takeover s" in table[0]
    assert " 0.84 " in table[2]
    assert table[2].split()[-2] == "—"  # no takeover measured then
    assert " 1.02 " in table[3]
    assert table[3].split()[-2] == "4.87"
