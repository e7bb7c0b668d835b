"""Numbered SQL migrations, applied by the database's owner role; the runtime role's grants.

Each file ``migrations/NNNN_name.sql`` runs once, in order, in its own transaction, recorded in
``schema_migrations``. A transaction-scoped advisory lock serialises runs that start at the
same moment: the second waits, then finds the work done.

``python -m services.common.migrate`` (``make migrate``) applies them, and with
``--runtime-role`` grants the role the services run as what they need and nothing more: rows
of every table, the sequences' use, no DDL (ADR 36). A service applies them when it starts only
with ``DF_MIGRATE_ON_START=true``; otherwise ``prepare_schema`` checks that the schema is
current and that its role may use every table, and refuses to start, naming what to run.
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


class SchemaNotReadyError(Exception):
    """The database's schema is older than this code's, or the role may not use it; the
    message names what is missing and the command that fixes it."""


MIGRATE_COMMAND = "`python -m services.common.migrate` (`make migrate`)"
RUNTIME_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
"""What the runtime role holds on every table: rows, never DDL."""


async def prepare_schema(connection: Connection, *, migrate: bool) -> None:
    """Apply the migrations (``migrate``, as the owner role), or check that the schema is
    current and that this session's role holds ``RUNTIME_PRIVILEGES`` on every table of it.

    Raises:
        SchemaNotReadyError: not migrated, migrated to an older version, or a table this role
            may not use; the message names the command to run.
    """
    if migrate:
        await apply_migrations(connection)
        return
    needed = available_migrations()[-1].version
    try:
        current = await connection.fetchval("SELECT max(version) FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        current = None
    except asyncpg.InsufficientPrivilegeError:
        current = needed  # the rights it lacks are named below
    if current is None or current < needed:
        found = "has no schema" if current is None else f"has schema version {current}"
        raise SchemaNotReadyError(
            f"the database {found}, this code needs version {needed}: run {MIGRATE_COMMAND} "
            "as the database's owner role, or start with DF_MIGRATE_ON_START=true"
        )
    # has_table_privilege needs no right on the table, and names each one missing (Postgres's
    # own refusal says "permission denied for table t" without the right).
    missing = await connection.fetch(
        """
        SELECT c.relname AS table_name, p.privilege
        FROM pg_class c
        CROSS JOIN unnest($1::text[]) AS p(privilege)
        WHERE c.relnamespace = current_schema()::text::regnamespace AND c.relkind = 'r'
          AND NOT has_table_privilege(c.oid, p.privilege)
        ORDER BY 1, 2
        """,
        list(RUNTIME_PRIVILEGES),
    )
    if missing:
        rights = ", ".join(f"{row['privilege']} on table {row['table_name']}" for row in missing)
        raise SchemaNotReadyError(await _refusal(connection, f"it lacks {rights}"))


async def _refusal(connection: Connection, what: str) -> str:
    role = await connection.fetchval("SELECT current_user")
    return (
        f"database role {role!r} may not use the event store: {what}; grant it with "
        f"`python -m services.common.migrate --runtime-role {role}` as the owner role"
    )


async def grant_runtime_role(connection: Connection, role: str) -> None:
    """Give ``role`` what the services need on the current schema's tables and sequences,
    now and for the tables later migrations create (default privileges of the role running
    this, which must be the one that runs the migrations)."""
    quoted = _identifier(role)
    rows = ", ".join(RUNTIME_PRIVILEGES)
    async with connection.transaction():
        schema = _identifier(await connection.fetchval("SELECT current_schema()"))
        for statement in (
            f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
            f"GRANT {rows} ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {rows} ON TABLES TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE ON SEQUENCES TO {quoted}",
        ):
            await connection.execute(statement)
    log.info("migration.runtime_role_granted", role=role)


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


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


async def _main(database_url: str, create: bool, runtime_roles: list[str]) -> None:
    if create and await ensure_database(database_url):
        print(f"created database {mask_url(database_url)}")
    connection = await asyncpg.connect(database_url)
    try:
        applied = await apply_migrations(connection)
        for role in runtime_roles:
            await grant_runtime_role(connection, role)
    finally:
        await connection.close()
    print(f"migrations applied: {applied or 'none (up to date)'}")
    for role in runtime_roles:
        print(f"runtime role {role!r}: {', '.join(RUNTIME_PRIVILEGES)} on every table")


def main() -> None:
    from durable.settings import CommonSettings

    parser = argparse.ArgumentParser(description="Apply the event store's migrations.")
    parser.add_argument("--database-url", default=CommonSettings().database_url)
    parser.add_argument("--create-database", action="store_true", help="create it if missing")
    parser.add_argument(
        "--runtime-role",
        action="append",
        default=[],
        help="grant this role (repeat for more) what the services need, and no DDL",
    )
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.database_url, arguments.create_database, arguments.runtime_role))


if __name__ == "__main__":
    main()
