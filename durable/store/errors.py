"""The store's errors, and the one place driver (asyncpg) errors are classified.

Callers ask these predicates what an error means (another writer was first, the database is
unavailable, the commit's outcome is unknown, a value cannot be stored) instead of matching
asyncpg's exception classes themselves.
"""

from __future__ import annotations

import asyncpg


class ConcurrencyError(Exception):
    """Another writer appended to the same instance first (the ``(instance_id, seq)`` fence).

    Not transient in the usual sense: the losing work is discarded and redone from the store.
    """


class AmbiguousCommitError(Exception):
    """The connection failed during COMMIT: the transaction may or may not have committed.

    The messages of such a batch are never acknowledged; their redelivery is deduplicated.
    """


class LeaseLostError(Exception):
    """The partition's lease moved on (``durable_lease_fence``): this process no longer owns
    the partition, and nothing of the transaction was written (ADR 27)."""


LEASE_LOST_SQLSTATE = "DF001"


def is_lease_lost(error: BaseException) -> bool:
    return isinstance(error, asyncpg.PostgresError) and error.sqlstate == LEASE_LOST_SQLSTATE


UNSTORABLE_ERRORS = (asyncpg.DataError, asyncpg.ProgramLimitExceededError)
"""SQLSTATE classes 22 (data exception) and 54 (program limit exceeded): a value Postgres
refuses to store, which every retry would refuse the same way (ADR 21)."""


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


_A_STATEMENT_OF_ITS_OWN = "57014"
"""query_canceled (a statement time-out, a cancel request): this statement, not the server."""


def is_unreachable(error: BaseException) -> bool:
    """The server cannot take any work now (down, failing over, starting up or shutting down,
    out of connections): whatever was asked will fail the same way until it is back, and
    then succeed. Narrower than ``is_unavailable``: not a statement cancelled, nor one short
    of memory or disk, which smaller work might get through."""
    if not is_unavailable(error):
        return False
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate == _A_STATEMENT_OF_ITS_OWN:
        return False
    return not (sqlstate.startswith("53") and sqlstate != "53300")  # 53300: too many connections


def is_connection_failure(error: BaseException) -> bool:
    """Errors after which the connection state (and any in-flight COMMIT) is unknown.

    Among them two of asyncpg's client errors, seen when a primary fails over: no host of a
    multi-host DSN takes writes (``TargetServerAttributeNotMatched``: none is a primary yet);
    and its plain ``InternalClientError``, "cannot switch to state …; another operation (2)
    is in progress", which an operation gets on a pooled session that the server ended
    unasked ("terminating connection due to unexpected postmaster exit") before the socket's
    end has been read. (Not its other subclasses: ``OutdatedSchemaCacheError`` is a
    statement's.)
    """
    return (
        isinstance(
            error,
            asyncpg.ConnectionDoesNotExistError
            | asyncpg.InterfaceError
            | asyncpg.PostgresConnectionError
            | asyncpg.exceptions.TargetServerAttributeNotMatched
            | asyncpg.exceptions.ProtocolError
            | ConnectionError
            | OSError,
        )
        or type(error) is asyncpg.InternalClientError
    )
