"""The benchmark's history: one JSON line per run with the commit, the machine, its ceilings
and the key ratios, so that a regression shows across runs; printed as a table.

    python -m bench.history                              # this machine's runs
    python -m bench.history --file docs/bench-history.jsonl   # the published ones
    python -m bench.history --publish                    # the latest run into docs/

Every ``make bench`` appends to ``bench/results/history.jsonl`` (this machine's, not
committed: machines differ too much to share one file); ``make bench-publish`` appends the
latest run's line to ``docs/bench-history.jsonl``, the runs docs/performance.md reports.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.metrics import PEERS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs"
LOCAL_HISTORY = RESULTS_DIR / "history.jsonl"
KEPT_CEILINGS = (
    "postgres_commits_per_s_1_connection",
    "rabbitmq_round_trips_per_s",
    "round_trip_step_ceiling_per_s",
)


def entry(results: dict[str, Any]) -> dict[str, Any]:
    """A run's line: when, which commit, the machine and its ceilings, and for every row of
    the table that has a target ours and its ratios to each peer and to its ceiling."""
    environment = results.get("environment", {})
    machine = environment.get("machine", {})
    ceilings = results.get("ceilings", {}).get("metrics", {})
    key_rows: dict[str, Any] = {}
    for row in results.get("rows", []):
        if not row.get("target"):
            continue
        ratios = {
            against: row.get(f"ours_vs_{against}")
            for against in (*PEERS, "ceiling")
            if row.get(f"ours_vs_{against}") is not None
        }
        key_rows[f"{row['workload']}.{row['metric']}"] = {
            "ours": row.get("ours"),
            "ratios": ratios,
            "met": row.get("target_met"),
        }
    return {
        "started_at": results.get("started_at"),
        "commit": environment.get("ours"),
        "mode": results.get("mode"),
        "machine": {
            "cores": machine.get("cores"),
            "cpu": machine.get("cpu"),
            "load_average_at_start": machine.get("load_average_at_start"),
        },
        "ceilings": {key: ceilings[key] for key in KEPT_CEILINGS if key in ceilings},
        "systems": {
            system: result.get("status") for system, result in results.get("systems", {}).items()
        },
        "rows": key_rows,
    }


def append(line: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as history:
        history.write(json.dumps(line, default=str, sort_keys=True) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """The history's lines, oldest first; a line that is not JSON is skipped."""
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def _ratio(row: str, against: str | None = None) -> Callable[[dict[str, Any]], float | None]:
    """A row's ratio to one peer or the ceiling, or (``against`` None) to its worst peer."""

    def pick(line: dict[str, Any]) -> float | None:
        ratios = line.get("rows", {}).get(row, {}).get("ratios", {})
        if against is not None:
            value = ratios.get(against)
            return None if value is None else float(value)
        peers = [float(v) for k, v in ratios.items() if k != "ceiling" and v is not None]
        return min(peers) if peers else None

    return pick


def _ours(row: str, *former: str) -> Callable[[dict[str, Any]], float | None]:
    """Ours in a row, or in the row as ``former`` names it in older lines."""

    def pick(line: dict[str, Any]) -> float | None:
        rows = line.get("rows", {})
        found: dict[str, Any] = next((rows[name] for name in (row, *former) if name in rows), {})
        value = found.get("ours")
        return None if value is None else float(value)

    return pick


def _ceiling(key: str) -> Callable[[dict[str, Any]], float | None]:
    def pick(line: dict[str, Any]) -> float | None:
        value = line.get("ceilings", {}).get(key)
        return None if value is None else float(value)

    return pick


# The table's columns: "worst" is ours against the peer it beats by least.
COLUMNS: list[tuple[str, Callable[[dict[str, Any]], float | None]]] = [
    ("commits/s", _ceiling("postgres_commits_per_s_1_connection")),
    ("step ceiling/s", _ceiling("round_trip_step_ceiling_per_s")),
    ("W1 /ceiling", _ratio("W1.activities_per_s", "ceiling")),
    ("W1 local worst", _ratio("W1.local_activities_per_s")),
    ("W2 /dbos", _ratio("W2.orchestrations_per_s", "dbos")),
    ("W2 /celery", _ratio("W2.orchestrations_per_s", "celery")),
    ("W2 /temporal", _ratio("W2.orchestrations_per_s", "temporal")),
    ("CPU worst", _ratio("W2.cpu_ms_per_orchestration")),
    ("W3 worst", _ratio("W3.fan_out_1000_wall_s")),
    ("W4 p50 worst", _ratio("W4.idle_p50_ms")),
    ("W4 load /dbos", _ratio("W4.loaded_p99_ms", "dbos")),
    ("W5 p99 ms", _ours("W5.lateness_p99_ms")),
    # W8 was called W2R before it measured the takeover too.
    ("W8 3÷1", _ours("W8.three_over_one", "W2R.three_over_one")),
    ("W8 takeover s", _ours("W8.takeover_s")),
]


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{round(value, 2):g}"


def format_history(lines: list[dict[str, Any]]) -> str:
    """One row per run, oldest first: when, commit, mode, the machine's load average when it
    started (other work on the machine slows every system), ceilings, key ratios, targets met."""
    header = ["run (UTC)", "commit", "mode", "load", *(name for name, _ in COLUMNS), "met"]
    table = [header]
    for line in lines:
        verdicts = [row.get("met") for row in line.get("rows", {}).values()]
        judged = [v for v in verdicts if v is not None]
        table.append(
            [
                str(line.get("started_at", ""))[:16].replace("T", " "),
                str(line.get("commit", "?")).replace(" (with uncommitted changes)", "+"),
                str(line.get("mode", "?")),
                _cell((line.get("machine", {}).get("load_average_at_start") or [None])[0]),
                *(_cell(pick(line)) for _, pick in COLUMNS),
                f"{sum(judged)}/{len(judged)}",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def publish(results_dir: Path = RESULTS_DIR, docs: Path = DOCS) -> list[Path]:
    """The latest run into the docs: its chart as ``docs/images/bench-<mode>.png`` and its line
    appended to ``docs/bench-history.jsonl``; the paths written."""
    latest = results_dir / "latest.json"
    if not latest.exists():
        raise SystemExit(f"no run to publish: {latest} is missing (run make bench first)")
    results = json.loads(latest.read_text())
    written = []
    chart = results_dir / "latest.png"
    if chart.exists():
        image = docs / "images" / f"bench-{results.get('mode', 'full')}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chart, image)
        written.append(image)
    append(entry(results), docs / "bench-history.jsonl")
    written.append(docs / "bench-history.jsonl")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--file", type=Path, default=LOCAL_HISTORY)
    parser.add_argument("--last", type=int, default=0, help="only the last N runs")
    parser.add_argument(
        "--publish", action="store_true", help="copy the latest run's chart and line to docs/"
    )
    arguments = parser.parse_args(argv)
    if arguments.publish:
        for path in publish():
            print(f"wrote {path}")
        return
    lines = read(arguments.file)
    if not lines:
        print(f"no runs in {arguments.file}")
        return
    print(format_history(lines[-arguments.last :] if arguments.last else lines))
    print("ratios: how many times better ours is; worst = against the peer it beats by least")


if __name__ == "__main__":
    main()
