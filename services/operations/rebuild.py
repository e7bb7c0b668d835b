"""Rebuilding the ``instances`` read model from the event streams, while the system runs.

Instances are taken in pages of ``batch_size``. Without ``apply`` each page is read in one
read-only REPEATABLE READ transaction: no locks, and a row and its events always agree (the
orchestrator writes both in one transaction). With ``apply`` each page's rows are locked with
``FOR UPDATE SKIP LOCKED``: a row the orchestrator holds is skipped and retried after the
pass, and while this tool holds a row the orchestrator waits for it (one page's work), so a
concurrent write is never overwritten and never overwrites a repair with a stale value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from durable.store.database import Connection
from durable.store.events import load_stream_txn
from durable.store.rows import existing_instance_ids, instance_rows_txn, repair_instance_txn
from durable.store.selection import InstanceSelection, selected_ids
from engine import OrchestratorFunction
from services.operations.projections import differences, project
from services.operations.session import Progress

BUSY_RETRIES = 5
BUSY_PAUSE_SECONDS = 0.2


@dataclass(frozen=True)
class RowReport:
    """One instance whose row differs from its events, or that could not be checked."""

    instance_id: str
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    repaired: bool = False
    skipped: str | None = None


@dataclass
class RebuildSummary:
    checked: int = 0
    differing: int = 0
    repaired: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class ProjectionRebuild:
    def __init__(
        self,
        pool: asyncpg.Pool,
        orchestrators: Mapping[str, OrchestratorFunction],
        *,
        apply: bool,
        report: Callable[[RowReport], None],
        progress: Progress,
        batch_size: int = 100,
    ) -> None:
        self._pool = pool
        self._orchestrators = orchestrators
        self._apply = apply
        self._report = report
        self._progress = progress
        self._batch_size = batch_size
        self.summary = RebuildSummary()

    async def run(self, selection: InstanceSelection) -> RebuildSummary:
        busy: list[str] = []
        async for ids in selected_ids(self._pool, selection, self._batch_size):
            busy += await self._page(ids)
            self._progress.update(self._describe)
        for _ in range(BUSY_RETRIES):
            if not busy:
                break
            await asyncio.sleep(BUSY_PAUSE_SECONDS)
            retry, busy = busy, []
            for start in range(0, len(retry), self._batch_size):
                busy += await self._page(retry[start : start + self._batch_size])
        self.summary.busy = busy
        for instance_id in busy:
            self._report(RowReport(instance_id, skipped="busy: the orchestrator held its row"))
        return self.summary

    def _describe(self) -> str:
        s = self.summary
        return f"{s.checked:,} instances checked, {s.differing:,} differ, {s.repaired:,} repaired"

    async def _page(self, ids: list[str]) -> list[str]:
        """Check (and repair) one page; return the ids that were locked by someone else."""
        async with self._pool.acquire() as connection:
            if self._apply:
                async with connection.transaction():
                    rows = await instance_rows_txn(connection, ids, lock=True)
                    await self._check(connection, rows)
            else:
                async with connection.transaction(isolation="repeatable_read", readonly=True):
                    rows = await instance_rows_txn(connection, ids, lock=False)
                    await self._check(connection, rows)
        seen = {row["instance_id"] for row in rows}
        # Rows purged since the page was listed are simply gone; only locked ones come back.
        if not self._apply:
            return []
        return await existing_instance_ids(self._pool, [i for i in ids if i not in seen])

    async def _check(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        for live in rows:
            instance_id = live["instance_id"]
            stream = await load_stream_txn(connection, instance_id)
            projection = project(instance_id, stream, self._orchestrators, live)
            self.summary.checked += 1
            if projection.skipped is not None:
                self.summary.skip(projection.skipped)
                continue
            for name in projection.kept:
                if name != "correlation_id":  # never in any event; documented, not news
                    self.summary.kept[name] = self.summary.kept.get(name, 0) + 1
            found = differences(projection, live)
            if not found:
                continue
            self.summary.differing += 1
            if self._apply:
                await repair_instance_txn(
                    connection, instance_id, {k: v[1] for k, v in found.items()}
                )
                self.summary.repaired += 1
            self._report(RowReport(instance_id, found, repaired=self._apply))
