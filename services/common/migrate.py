"""Numbered SQL migrations, applied at start-up by every service.

Each file ``migrations/NNNN_name.sql`` runs once, in order, in its own transaction, recorded in
``schema_migrations``. A transaction-scoped advisory lock serialises services that start at the
same moment: the second waits, then finds the work done.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

import asyncpg
import structlog

from durable.redaction import mask_url
from durable.store.database import Connection

log = structlog.get_logger(__name__)

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every service of the deployment.
_ADVISORY_LOCK_KEY = 0x44_46_4D_49_47  # "DFMIG"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The migrations shipped with this code, in version order."""
    found: list[Migration] = []
    for entry in resources.files("services.common").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


async def apply_migrations(connection: Connection) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for migration in available_migrations():
            if migration.version in done:
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
            log.info("migration.applied", version=migration.version, name=migration.name)
    return applied_now


async def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it does not exist; True if created."""
    try:
        connection = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await connection.close()
        return False
    database = urlsplit(database_url).path.lstrip("/")
    if not database or '"' in database:
        raise ValueError(f"cannot tell which database to create from {mask_url(database_url)!r}")
    admin = await asyncpg.connect(database_url, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    return True


async def _main(database_url: str, create: bool) -> None:
    if create and await ensure_database(database_url):
        print(f"created database {mask_url(database_url)}")
    connection = await asyncpg.connect(database_url)
    try:
        applied = await apply_migrations(connection)
    finally:
        await connection.close()
    print(f"migrations applied: {applied or 'none (up to date)'}")


def main() -> None:
    from durable.settings import CommonSettings

    parser = argparse.ArgumentParser(description="Apply the event store's migrations.")
    parser.add_argument("--database-url", default=CommonSettings().database_url)
    parser.add_argument("--create-database", action="store_true", help="create it if missing")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.database_url, arguments.create_database))


if __name__ == "__main__":
    main()
