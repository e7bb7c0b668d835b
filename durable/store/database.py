"""Postgres connections (asyncpg): the pool every service opens, and a transaction of its own.

Driver errors are classified in ``durable.store.errors``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from durable.store.errors import AmbiguousCommitError, is_connection_failure
from durable.store.hosts import connect_per_host

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection, whether held directly or borrowed from a pool."""

T = TypeVar("T")


async def _init_connection(connection: Connection) -> None:
    # JSON travels as text both ways: pydantic encodes and decodes it, once.
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=_identity, decoder=_identity, schema="pg_catalog", format="text"
        )


def _identity(value: Any) -> Any:
    return value


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: nothing.

    asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, a
    round trip on every release, to undo session state; this code never leaves any (settings
    are ``SET LOCAL``, advisory locks are transaction-scoped, cursors live in transactions).
    An open transaction is still rolled back by asyncpg before this is called.
    """


async def create_pool(
    database_url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: Mapping[str, str] | None = None,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """A connection pool whose json/jsonb columns read and write JSON text; its sessions run
    with ``server_settings`` (Postgres parameters, such as time-outs). Of several hosts in
    ``database_url``, each is tried in turn for a time of its own (``durable.store.hosts``).
    ``command_timeout``: the longest one call may take; asyncpg then cancels it, drops the
    connection and raises ``TimeoutError`` (a connection failure, ``is_connection_failure``)."""
    pool = await asyncpg.create_pool(
        database_url,
        connect=connect_per_host(database_url),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=None if server_settings is None else dict(server_settings),
        command_timeout=command_timeout,
    )
    assert pool is not None
    return pool


async def in_transaction(pool: asyncpg.Pool, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction of its own on a connection from ``pool``, and commit.

    Raises ``AmbiguousCommitError`` when the connection fails during the commit (the
    transaction may or may not have committed); anything ``work`` raises rolls it back.
    Cancelled, it drops its connection (the server then rolls the transaction back) rather
    than wait for a rollback on a server that may not answer (a frozen primary) for a whole
    command time-out: a lost partition's consumer is stopped that way.
    """
    async with pool.acquire() as connection:
        try:
            return await _in_transaction(connection, work)
        except asyncio.CancelledError:
            connection.terminate()
            raise


async def _in_transaction(connection: Connection, work: Callable[[Connection], Awaitable[T]]) -> T:
    transaction = connection.transaction()
    await transaction.start()
    try:
        result = await work(connection)
    except asyncio.CancelledError:
        raise  # no rollback: the caller drops the connection
    except BaseException:
        await transaction.rollback()
        raise
    try:
        await transaction.commit()
    except Exception as error:
        if is_connection_failure(error):
            raise AmbiguousCommitError(str(error)) from error
        raise
    return result
