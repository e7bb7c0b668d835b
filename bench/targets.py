"""The issue's targets, each a ratio or a limit within one run: ours against the peers
measured in the same run, against the machine's ceilings measured in the same run, or
against a fixed limit.

A ratio is always "how many times better ours is" (``advantage``): ours ÷ peer for rates,
peer ÷ ours for times and latencies, so a ratio above 1 means our runtime did better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def advantage(higher_is_better: bool, ours: float | None, other: float | None) -> float | None:
    """How many times better ours is than ``other`` (> 1: ours better); None if unknown."""
    if ours is None or other is None or math.isnan(ours) or math.isnan(other):
        return None
    numerator, denominator = (ours, other) if higher_is_better else (other, ours)
    if denominator == 0:
        return None
    return round(numerator / denominator, 2)


@dataclass(frozen=True)
class Measured:
    """What a target is checked against: every system's value of the row's metric, the
    machine's ceilings of the same run, and the other metrics ours recorded in the row's
    workload (the settings it ran with among them)."""

    values: dict[str, float | None]
    ceilings: dict[str, float]
    higher_is_better: bool
    workload: dict[str, float] = field(default_factory=dict)

    @property
    def ours(self) -> float | None:
        value = self.values.get("ours")
        return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class AtMost:
    limit: float
    unit: str = ""

    def describe(self) -> str:
        return f"≤ {self.limit:g} {self.unit}".strip()

    def met(self, measured: Measured) -> bool | None:
        return None if measured.ours is None else measured.ours <= self.limit


@dataclass(frozen=True)
class AtLeast:
    limit: float
    unit: str = ""

    def describe(self) -> str:
        return f"≥ {self.limit:g} {self.unit}".strip()

    def met(self, measured: Measured) -> bool | None:
        return None if measured.ours is None else measured.ours >= self.limit


@dataclass(frozen=True)
class BeatPeers:
    """Ours at least ``times`` better than each of ``peers``, or than every peer measured in
    the run when ``peers`` is empty. Peers not measured (not installed, not able to run the
    workload) are left out; with none measured the target is not judged."""

    times: float
    peers: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"≥ {self.times:g}x {', '.join(self.peers) if self.peers else 'every peer'}"

    def ratios(self, measured: Measured) -> dict[str, float]:
        peers = self.peers or tuple(s for s in measured.values if s != "ours")
        found = {
            peer: advantage(measured.higher_is_better, measured.ours, measured.values.get(peer))
            for peer in peers
        }
        return {peer: ratio for peer, ratio in found.items() if ratio is not None}

    def met(self, measured: Measured) -> bool | None:
        ratios = self.ratios(measured)
        return None if not ratios else all(r >= self.times for r in ratios.values())


@dataclass(frozen=True)
class OfCeiling:
    """Ours at least ``fraction`` of a ceiling the same run measured (``bench/ceilings.py``)."""

    ceiling: str
    fraction: float
    label: str

    def describe(self) -> str:
        return f"≥ {self.fraction:g}x ceiling {self.label}"

    def ratio(self, measured: Measured) -> float | None:
        return advantage(
            measured.higher_is_better, measured.ours, measured.ceilings.get(self.ceiling)
        )

    def met(self, measured: Measured) -> bool | None:
        ratio = self.ratio(measured)
        return None if ratio is None else ratio >= self.fraction


@dataclass(frozen=True)
class WithinLeases:
    """Ours at most ``leases`` times the lease the workload ran with (its ``lease_seconds``
    metric): a bound that follows the lease setting (ADR 27)."""

    leases: float
    label: str

    def describe(self) -> str:
        return f"≤ {self.label}"

    def limit(self, measured: Measured) -> float | None:
        lease = measured.workload.get("lease_seconds")
        return None if lease is None else round(lease * self.leases, 2)

    def met(self, measured: Measured) -> bool | None:
        limit = self.limit(measured)
        return None if limit is None or measured.ours is None else measured.ours <= limit


Target = AtMost | AtLeast | BeatPeers | OfCeiling | WithinLeases


def describe(targets: tuple[Target, ...]) -> str:
    return "; ".join(target.describe() for target in targets)


def all_met(targets: tuple[Target, ...], measured: Measured) -> bool | None:
    """False if any target judged is missed, True if every one judged is met, None if none
    could be judged (a peer or a ceiling not measured)."""
    judged = [met for met in (t.met(measured) for t in targets) if met is not None]
    return None if not judged else all(judged)
