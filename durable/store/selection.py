"""Which instances an operations command works on, and reading their ids in bounded pages.

Pages are keyset pages over the ``instances`` primary key, so a run over millions of instances
holds only one page at a time and never keeps a long transaction open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contracts import OrchestrationStatus


@dataclass(frozen=True)
class InstanceSelection:
    """Filters over ``instances``; empty means "any". Every given filter must hold.

    Attributes:
        created_from / created_to: ``created_at`` bounds, inclusive.
        sample: at most this many instances, chosen at random among those that match.
    """

    instance_ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    statuses: tuple[OrchestrationStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    sample: int | None = None

    def where(self, first_parameter: int) -> tuple[str, list[object]]:
        """A condition over ``instances`` and its parameters, numbered from ``first_parameter``."""
        conditions: list[str] = []
        parameters: list[object] = []

        def add(condition: str, value: object) -> None:
            parameters.append(value)
            conditions.append(condition.format(f"${first_parameter + len(parameters) - 1}"))

        if self.instance_ids:
            add("instance_id = ANY({}::text[])", list(self.instance_ids))
        if self.names:
            add("name = ANY({}::text[])", list(self.names))
        if self.statuses:
            add("status = ANY({}::text[])", [s.value for s in self.statuses])
        if self.created_from is not None:
            add("created_at >= {}", self.created_from)
        if self.created_to is not None:
            add("created_at <= {}", self.created_to)
        return (" AND ".join(conditions) or "TRUE"), parameters


async def selected_ids(
    pool: asyncpg.Pool, selection: InstanceSelection, page_size: int
) -> AsyncIterator[list[str]]:
    """The ids of the selected instances, in id order, ``page_size`` at a time."""
    if selection.sample is not None:
        condition, parameters = selection.where(1)
        rows = await pool.fetch(
            f"SELECT instance_id FROM instances WHERE {condition} "
            f"ORDER BY random() LIMIT {int(selection.sample)}",
            *parameters,
        )
        ids = sorted(row["instance_id"] for row in rows)
        for start in range(0, len(ids), page_size):
            yield ids[start : start + page_size]
        return
    condition, parameters = selection.where(2)
    after: str | None = None
    while True:
        rows = await pool.fetch(
            f"""
            SELECT instance_id FROM instances
            WHERE ($1::text IS NULL OR instance_id > $1) AND {condition}
            ORDER BY instance_id
            LIMIT {int(page_size)}
            """,
            after,
            *parameters,
        )
        if not rows:
            return
        ids = [row["instance_id"] for row in rows]
        yield ids
        if len(ids) < page_size:
            return
        after = ids[-1]
