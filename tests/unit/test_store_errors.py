"""What a driver error says about the database: ``is_unreachable`` is true only when no work
at all can be done until the server is back, so that waiting, not splitting the work, is the
answer; a statement cancelled or short of memory may be the work's own fault."""

from __future__ import annotations

import asyncpg
import pytest

from durable.store.errors import is_connection_failure, is_unavailable, is_unreachable


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        TimeoutError(),
        # No host of the DSN takes writes: none is a primary yet.
        asyncpg.exceptions.TargetServerAttributeNotMatched(
            "None of the hosts match the target attribute requirement read-write"
        ),
        # A pooled session the server ended unasked, used before its socket's end was read.
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_server_that_is_down_failing_over_or_full_is_unreachable(error: Exception) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.OutOfMemoryError("out of memory"),
        asyncpg.DiskFullError("could not extend file"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_statement_cancelled_or_short_of_resources_is_unavailable_not_unreachable(
    error: Exception,
) -> None:
    assert is_unavailable(error)
    assert not is_unreachable(error)


def test_a_statements_own_error_is_neither() -> None:
    error = asyncpg.UniqueViolationError("duplicate key value")
    assert not is_unavailable(error)
    assert not is_unreachable(error)


def test_a_statement_cache_gone_stale_is_not_a_connection_failure() -> None:
    error = asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid")
    assert not is_connection_failure(error)
    assert not is_unreachable(error)
