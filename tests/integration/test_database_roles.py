"""The owner role migrates, the runtime role only uses: what a service started without
``DF_MIGRATE_ON_START`` checks, and what it says when the schema or its rights fall short."""

from __future__ import annotations

import asyncpg
import pytest

from services.common.migrate import (
    RUNTIME_PRIVILEGES,
    SchemaNotReadyError,
    apply_migrations,
    available_migrations,
    prepare_schema,
)
from tests.conftest import ADMIN_URL
from tests.helpers.least_privilege import DatabaseRoles, database_roles, database_url


async def as_role(roles: DatabaseRoles, runtime: bool = True) -> asyncpg.Connection:
    return await asyncpg.connect(
        database_url(ADMIN_URL, roles, roles.runtime if runtime else roles.owner)
    )


async def test_the_runtime_role_uses_every_table_and_may_change_no_schema() -> None:
    async with database_roles(ADMIN_URL) as roles:
        connection = await as_role(roles)
        try:
            await prepare_schema(connection, migrate=False)
            await connection.execute(
                "INSERT INTO outbox (exchange, routing_key, message_id, message_type, "
                "correlation_id, body) VALUES ('x', 'k', gen_random_uuid(), 't', 'c', '{}')"
            )
            assert await connection.fetchval("DELETE FROM outbox RETURNING 1") == 1
            for ddl in (
                "CREATE TABLE intruder (id int)",
                "ALTER TABLE events ADD COLUMN intruder int",
                "DROP TABLE timers",
                "TRUNCATE instances",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connection.execute(ddl)
        finally:
            await connection.close()


async def test_a_service_refuses_a_database_without_schema_and_names_the_command() -> None:
    async with database_roles(ADMIN_URL) as roles:
        owner = await as_role(roles, runtime=False)
        try:
            await owner.execute("DROP TABLE schema_migrations")
            with pytest.raises(SchemaNotReadyError) as refused:
                await prepare_schema(owner, migrate=False)
        finally:
            await owner.close()

    assert "has no schema" in str(refused.value)
    assert "python -m services.common.migrate" in str(refused.value)
    assert "make migrate" in str(refused.value)


async def test_a_service_refuses_an_older_schema_and_names_both_versions() -> None:
    newest = available_migrations()[-1].version
    async with database_roles(ADMIN_URL) as roles:
        owner = await as_role(roles, runtime=False)
        try:
            await owner.execute("DELETE FROM schema_migrations WHERE version = $1", newest)
            runtime = await as_role(roles)
            try:
                with pytest.raises(SchemaNotReadyError) as refused:
                    await prepare_schema(runtime, migrate=False)
            finally:
                await runtime.close()
        finally:
            await owner.close()

    message = str(refused.value)
    assert f"schema version {newest - 1}, this code needs version {newest}" in message
    assert "make migrate" in message


async def test_a_role_without_the_grants_is_refused_naming_it_the_table_and_the_right() -> None:
    async with database_roles(ADMIN_URL, grant=False) as roles:
        connection = await as_role(roles)
        try:
            with pytest.raises(SchemaNotReadyError) as refused:
                await prepare_schema(connection, migrate=False)
        finally:
            await connection.close()

    message = str(refused.value)
    assert f"role '{roles.runtime.user}'" in message
    assert "SELECT on table schema_migrations" in message
    assert f"--runtime-role {roles.runtime.user}" in message


async def test_a_role_missing_one_right_on_one_table_is_told_which() -> None:
    async with database_roles(ADMIN_URL) as roles:
        owner = await as_role(roles, runtime=False)
        try:
            await owner.execute(f'REVOKE DELETE ON timers FROM "{roles.runtime.user}"')
        finally:
            await owner.close()
        connection = await as_role(roles)
        try:
            with pytest.raises(SchemaNotReadyError) as refused:
                await prepare_schema(connection, migrate=False)
        finally:
            await connection.close()

    assert "it lacks DELETE on table timers;" in str(refused.value)


async def test_tables_of_later_migrations_are_granted_to_the_runtime_role_too() -> None:
    async with database_roles(ADMIN_URL) as roles:
        owner = await as_role(roles, runtime=False)
        try:
            await owner.execute(
                "CREATE TABLE later_migration (id bigint GENERATED ALWAYS AS IDENTITY)"
            )
            await apply_migrations(owner)
        finally:
            await owner.close()
        connection = await as_role(roles)
        try:
            await prepare_schema(connection, migrate=False)
            assert (
                await connection.fetchval("INSERT INTO later_migration DEFAULT VALUES RETURNING id")
                == 1
            )
        finally:
            await connection.close()
    assert set(RUNTIME_PRIVILEGES) == {"SELECT", "INSERT", "UPDATE", "DELETE"}
