"""``durable-ops check-invariants``: every selected instance's history against the rules of
a well-formed history (``invariants.RULES``), and its row against its events.

Instances are read a page at a time (``page_size`` rows and all their events) in one
read-only REPEATABLE READ snapshot per page, so a row and its events always agree as the
orchestrator wrote them, nothing is locked, and memory holds one page however many instances
there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from durable.store.events import RawStreamEvent, raw_streams_txn
from durable.store.rows import instance_rows_txn
from durable.store.selection import InstanceSelection, selected_ids
from services.operations.invariant_row import check_row
from services.operations.invariants import Violation, walk
from services.operations.session import Progress


def check_instance(row: Mapping[str, Any], stream: Sequence[RawStreamEvent]) -> list[Violation]:
    """Every rule ``row`` (an ``instances`` row, as ``durable.store.rows.live_row`` reads it)
    and its stored events ``stream`` (seq order) break."""
    instance_id = str(row["instance_id"])
    violations, executions = walk(instance_id, stream)
    return violations + check_row(instance_id, row, executions)


@dataclass
class InvariantSummary:
    checked: int = 0
    violations: int = 0
    instances: set[str] = field(default_factory=set)
    by_rule: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    """Instance ids asked for by ``--instance`` that have no row."""

    def add(self, violations: Sequence[Violation]) -> None:
        self.checked += 1
        for violation in violations:
            self.violations += 1
            self.instances.add(violation.instance_id)
            self.by_rule[violation.rule] = self.by_rule.get(violation.rule, 0) + 1

    @property
    def clean(self) -> bool:
        return not self.violations and not self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "violations": self.violations,
            "instances_with_violations": len(self.instances),
            "rules": dict(sorted(self.by_rule.items())),
            "missing": self.missing,
        }

    def describe(self) -> str:
        text = f"{self.checked:,} instances checked: "
        if not self.violations:
            text += "no violations"
        else:
            rules = ", ".join(f"{rule} {n:,}" for rule, n in sorted(self.by_rule.items()))
            text += f"{self.violations:,} violations in {len(self.instances):,} instances ({rules})"
        if self.missing:
            text += f"; {len(self.missing):,} not found: " + ", ".join(self.missing)
        return text


async def check_selection(
    pool: asyncpg.Pool,
    selection: InstanceSelection,
    on_violation: Callable[[Violation], None],
    progress: Progress,
    page_size: int = 100,
) -> InvariantSummary:
    """Check every selected instance, a page at a time, each page in one read-only snapshot."""
    summary = InvariantSummary()
    seen: set[str] = set()
    async for ids in selected_ids(pool, selection, page_size):
        async with (
            pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await instance_rows_txn(connection, ids, lock=False)
            streams = await raw_streams_txn(connection, [row["instance_id"] for row in rows])
        for row in rows:
            violations = check_instance(row, streams[row["instance_id"]])
            summary.add(violations)
            for violation in violations:
                on_violation(violation)
        if selection.instance_ids:
            seen.update(row["instance_id"] for row in rows)
        progress.update(summary.describe)
    summary.missing = [i for i in dict.fromkeys(selection.instance_ids) if i not in seen]
    return summary
