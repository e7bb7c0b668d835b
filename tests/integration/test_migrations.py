"""Migrations on a database that has none yet: idempotent, and safe when services start at once."""

from __future__ import annotations

import asyncio

import asyncpg

from services.common.migrate import apply_migrations, available_migrations

CONCURRENT_SERVICES = 6


async def applied_versions(database_url: str) -> list[tuple[int, int]]:
    """(version, times recorded) for every row of ``schema_migrations``."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT version, count(*) AS times FROM schema_migrations GROUP BY version "
            "ORDER BY version"
        )
    finally:
        await connection.close()
    return [(row["version"], row["times"]) for row in rows]


async def table_names(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {row["table_name"] for row in rows}


async def test_applying_migrations_twice_applies_nothing_the_second_time(
    empty_database_url: str,
) -> None:
    versions = [migration.version for migration in available_migrations()]
    connection = await asyncpg.connect(empty_database_url)
    try:
        first = await apply_migrations(connection)
        tables_after_first = await table_names(connection)
        second = await apply_migrations(connection)
        tables_after_second = await table_names(connection)
    finally:
        await connection.close()

    assert first == versions
    assert second == []
    assert {"schema_migrations", "instances", "events", "outbox"} <= tables_after_first
    assert tables_after_second == tables_after_first
    assert await applied_versions(empty_database_url) == [(v, 1) for v in versions]


async def test_services_migrating_a_fresh_database_at_once_apply_each_version_exactly_once(
    empty_database_url: str,
) -> None:
    versions = [migration.version for migration in available_migrations()]
    connections = [await asyncpg.connect(empty_database_url) for _ in range(CONCURRENT_SERVICES)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in connections))
    finally:
        await asyncio.gather(*(c.close() for c in connections))

    # Every service succeeded; between them each version was applied once.
    assert sorted(v for applied in results for v in applied) == versions
    assert sum(1 for applied in results if applied) == 1
    assert await applied_versions(empty_database_url) == [(v, 1) for v in versions]
