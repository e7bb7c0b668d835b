"""The results: one row per (workload, metric) with every system's value, the ratio to each
peer and the issue's target; printed as a table and written as JSON.

A ratio is always "how many times better ours is": ours ÷ peer for rates, peer ÷ ours for
times and latencies, so a ratio above 1 means our runtime did better. The targets are in
``bench/targets.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.config import SYSTEMS
from bench.metrics import PEERS, metrics_for
from bench.targets import (
    BeatPeers,
    Measured,
    OfCeiling,
    Target,
    WithinLeases,
    advantage,
    all_met,
)


def required_ratios(
    targets: tuple[Target, ...], values: dict[str, float | None]
) -> dict[str, float]:
    """The ratio each target asks of ours, by what it is taken against (a peer, "ceiling")."""
    required: dict[str, float] = {}
    for target in targets:
        if isinstance(target, BeatPeers):
            for peer in target.peers or tuple(s for s in values if s != "ours"):
                required[peer] = target.times
        elif isinstance(target, OfCeiling):
            required["ceiling"] = target.fraction
    return required


def build_rows(results: dict[str, Any], fan_out_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    ceilings = results.get("ceilings", {}).get("metrics", {})
    for metric in metrics_for(fan_out_sizes):
        values: dict[str, float | None] = {}
        ours: dict[str, float] = {}
        if metric.workload == "ceilings":
            if metric.key not in ceilings:
                continue
            values = {"ours": ceilings[metric.key]}
        else:
            for system in SYSTEMS:
                workload = (
                    results["systems"].get(system, {}).get("workloads", {}).get(metric.workload, {})
                )
                key = metric.key if system == "ours" else metric.peer_key or metric.key
                values[system] = workload.get("metrics", {}).get(key)
                if system == "ours":
                    ours = workload.get("metrics", {})
            if all(v is None for v in values.values()):
                continue
        measured = Measured(values, ceilings, metric.higher_is_better, ours)
        of_ceiling = [t for t in metric.targets if isinstance(t, OfCeiling)]
        vs_ceiling = of_ceiling[0].ratio(measured) if of_ceiling else None
        target = metric.describe_target()
        if vs_ceiling is not None:
            target += f" (now {vs_ceiling:g}x)"
        limits = [t.limit(measured) for t in metric.targets if isinstance(t, WithinLeases)]
        if limits and limits[0] is not None:
            target += f": {limits[0]:g} s"
        rows.append(
            {
                "workload": metric.workload,
                "metric": metric.key,
                "label": metric.label,
                "unit": metric.unit,
                "higher_is_better": metric.higher_is_better,
                **{system: values.get(system) for system in SYSTEMS},
                **{
                    f"ours_vs_{peer}": advantage(
                        metric.higher_is_better, values.get("ours"), values.get(peer)
                    )
                    for peer in PEERS
                },
                "ours_vs_ceiling": vs_ceiling,
                "ceiling": of_ceiling[0].ceiling if of_ceiling else None,
                "required": required_ratios(metric.targets, values),
                "target": target,
                "target_met": all_met(metric.targets, measured),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    return str(value)


def _header(ratio: str) -> list[str]:
    return [
        "workload",
        "metric",
        "unit",
        "ours",
        *PEERS,
        *(ratio.format(p) for p in PEERS),
        "target",
        "met",
    ]


def _cells(row: dict[str, Any], ratio_suffix: str = "") -> list[str]:
    def ratio(peer: str) -> str:
        value = row[f"ours_vs_{peer}"]
        return _cell(value) + (ratio_suffix if value is not None else "")

    return [
        row["workload"],
        row["label"],
        row["unit"],
        _cell(row["ours"]),
        *(_cell(row[p]) for p in PEERS),
        *(ratio(p) for p in PEERS),
        row["target"],
        _cell(row["target_met"]),
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    header = _header("x{}")
    lines = [header, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if number == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_markdown(rows: list[dict[str, Any]]) -> str:
    header = _header("ours vs {}")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cells(row, "x")) + " |" for row in rows]
    return "\n".join(out)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
