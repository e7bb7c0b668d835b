"""Recording which functions a deployment runs, so clients can refuse unknown names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import asyncpg


async def record_registered_functions(
    pool: asyncpg.Pool, kind: Literal["orchestrator", "activity"], names: Iterable[str]
) -> None:
    await pool.execute(
        """
        INSERT INTO registered_functions (kind, name)
        SELECT $1, unnest($2::text[])
        ON CONFLICT (kind, name) DO UPDATE SET updated_at = now()
        """,
        kind,
        sorted(names),
    )


async def registered_orchestrators(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch("SELECT name FROM registered_functions WHERE kind = 'orchestrator'")
    return {row["name"] for row in rows}


async def registered_activities(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch("SELECT name FROM registered_functions WHERE kind = 'activity'")
    return {row["name"] for row in rows}
