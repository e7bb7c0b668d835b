"""Postgres connections (asyncpg) and the translation of driver errors into ours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection, whether held directly or borrowed from a pool."""

T = TypeVar("T")


class ConcurrencyError(Exception):
    """Another writer appended to the same instance first (the ``(instance_id, seq)`` fence).

    Not transient in the usual sense: the losing work is discarded and redone from the store.
    """


class AmbiguousCommitError(Exception):
    """The connection failed during COMMIT: the transaction may or may not have committed.

    The messages of such a batch are never acknowledged; their redelivery is deduplicated.
    """


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


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool whose json/jsonb columns read and write JSON text."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def is_unique_violation(error: BaseException) -> bool:
    return isinstance(error, asyncpg.UniqueViolationError)


def is_write_conflict(error: BaseException) -> bool:
    """Another writer got to the same instance first: a seq taken, a row moved (the fence of
    ``durable_fence``), or a deadlock between two writers of overlapping batches."""
    return isinstance(
        error,
        asyncpg.UniqueViolationError | asyncpg.SerializationError | asyncpg.DeadlockDetectedError,
    )


_UNAVAILABLE_CLASSES = ("08", "53", "57")
"""SQLSTATE classes of a server that cannot take work now: connection exceptions,
insufficient resources (too many connections), operator intervention (shutting down,
starting up, a backend terminated by an administrator)."""


def is_unavailable(error: BaseException) -> bool:
    """The database cannot be reached or refuses work for now; the same call may succeed
    later. (Not a statement's own error, which would fail again.)"""
    if is_connection_failure(error) or isinstance(error, TimeoutError):
        return True
    if isinstance(error, asyncpg.ObjectNotInPrerequisiteStateError):
        # ALTER DATABASE … ALLOW_CONNECTIONS false, as during maintenance.
        return "not currently accepting connections" in str(error)
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "")[:2] in _UNAVAILABLE_CLASSES
    return False


def is_connection_failure(error: BaseException) -> bool:
    """Errors after which the connection state (and any in-flight COMMIT) is unknown."""
    return isinstance(
        error,
        asyncpg.ConnectionDoesNotExistError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | ConnectionError
        | OSError,
    )


async def in_transaction(pool: asyncpg.Pool, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction of its own on a connection from ``pool``, and commit.

    Raises ``AmbiguousCommitError`` when the connection fails during the commit (the
    transaction may or may not have committed); anything ``work`` raises rolls it back.
    """
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            result = await work(connection)
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
