"""The run's ratios as a chart: for each metric that has them, how many times better ours is
than each peer and, where a target holds ours to a ceiling of the machine, than that
ceiling; each bar drawn from parity (1) to the ratio on a log scale, with the ratio its
target asks for as a tick.

Written by every ``make bench`` beside its JSON (``bench/results/latest.png``);
``make bench-publish`` copies it to ``docs/images/`` for docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.metrics import PEERS

SERIES = (*PEERS, "ceiling")
COLOURS = {"dbos": "#4c72b0", "celery": "#55a868", "temporal": "#c44e52", "ceiling": "#8c8c8c"}


@dataclass(frozen=True)
class Bar:
    """One bar: a metric's ratio against one peer or the ceiling, and what its target asks."""

    label: str
    against: str
    ratio: float
    required: float | None


def bars(rows: list[dict[str, Any]]) -> list[Bar]:
    """Every ratio of the table's rows, in the table's order; a metric that two rows share
    (the same key) is drawn once."""
    found: list[Bar] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row["workload"], row["metric"])
        if key in seen:
            continue
        seen.add(key)
        label = f"{row['workload']} {row['label']}"
        required = row.get("required") or {}
        for against in SERIES:
            ratio = row.get(f"ours_vs_{against}")
            if ratio is not None and ratio > 0:
                found.append(Bar(label, against, float(ratio), required.get(against)))
    return found


def write_chart(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Draw the chart to ``path`` (PNG); False, and nothing written, when there is no ratio."""
    drawn = bars(rows)
    if not drawn:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = list(dict.fromkeys(bar.label for bar in drawn))
    present = [s for s in SERIES if any(bar.against == s for bar in drawn)]
    height = 0.8 / len(present)
    figure, axes = plt.subplots(figsize=(11, 1.2 + 0.42 * len(labels) * max(1, len(present) / 2)))
    for index, series in enumerate(present):
        for bar in (b for b in drawn if b.against == series):
            y = labels.index(bar.label) + (index - (len(present) - 1) / 2) * height
            # From parity: a bar to the right is ours ahead, to the left ours behind.
            axes.barh(y, bar.ratio - 1, height=height, color=COLOURS[series], left=1)
            behind = bar.ratio < 1
            axes.annotate(
                f"{bar.ratio:g}x",
                (bar.ratio, y),
                xytext=(-3 if behind else 3, 0),
                textcoords="offset points",
                ha="right" if behind else "left",
                va="center",
                fontsize=6,
            )
            if bar.required is not None:
                axes.plot([bar.required] * 2, [y - height / 2, y + height / 2], color="black")
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("how many times better ours is (log scale; > 1: ours better; tick: target)")
    axes.set_title(title, fontsize=9)
    axes.legend(
        handles=[Patch(color=COLOURS[s], label=f"ours vs {s}") for s in present],
        fontsize=7,
        loc="lower right",
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
