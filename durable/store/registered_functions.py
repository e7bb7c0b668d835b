"""Recording which functions a deployment runs (orchestrators, activities, entities), so
clients can refuse unknown names, and
which events of each orchestrator only a management key may raise (ADR 20)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Literal

import asyncpg


async def record_registered_functions(
    pool: asyncpg.Pool,
    kind: Literal["orchestrator", "activity", "entity"],
    names: Iterable[str],
    protected_events: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Record ``names`` as registered; for orchestrators, with their ``protected_events``
    (by name; an orchestrator not in it protects none, even if an earlier version did)."""
    protected = {name: sorted(events) for name, events in (protected_events or {}).items()}
    await pool.execute(
        """
        INSERT INTO registered_functions (kind, name, protected_events)
        SELECT $1, f.name,
               ARRAY(SELECT jsonb_array_elements_text(coalesce($3::jsonb -> f.name, '[]')))
        FROM unnest($2::text[]) AS f(name)
        ON CONFLICT (kind, name) DO UPDATE
            SET updated_at = now(), protected_events = EXCLUDED.protected_events
        """,
        kind,
        sorted(names),
        json.dumps(protected),
    )


async def registered_orchestrators(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch("SELECT name FROM registered_functions WHERE kind = 'orchestrator'")
    return {row["name"] for row in rows}


async def registered_activities(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch("SELECT name FROM registered_functions WHERE kind = 'activity'")
    return {row["name"] for row in rows}


async def registered_entities(pool: asyncpg.Pool) -> set[str]:
    """Entity names (lower-cased, as entity ids spell them) the deployment runs."""
    rows = await pool.fetch("SELECT name FROM registered_functions WHERE kind = 'entity'")
    return {row["name"] for row in rows}


async def protected_events(pool: asyncpg.Pool, orchestrator: str) -> frozenset[str]:
    """The events only a management key may raise on ``orchestrator``'s instances, casefolded
    (event names are matched case-insensitively)."""
    events: list[str] | None = await pool.fetchval(
        "SELECT protected_events FROM registered_functions "
        "WHERE kind = 'orchestrator' AND name = $1",
        orchestrator,
    )
    return frozenset(event.casefold() for event in events or ())
