"""Waiting for asynchronous outcomes with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from contracts import OrchestrationStatus
    from durable.client import DurableClient

T = TypeVar("T")


async def assert_eventually(
    check: Callable[[], Awaitable[T] | T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call ``check`` until it returns a truthy value without raising ``AssertionError``.

    Returns that value; on the deadline, re-raises the last ``AssertionError`` (or fails with
    ``message`` when ``check`` kept returning something falsy).
    """
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    while True:
        try:
            result: Any = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result  # type: ignore[no-any-return]
            last_error = None
        except AssertionError as error:
            last_error = error
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"{message} within {timeout} s")
        await asyncio.sleep(interval)


async def wait_for_status(
    client: DurableClient, instance_id: str, status: OrchestrationStatus, timeout: float = 30.0
) -> None:
    """Wait until the instance reads ``status`` (not merely any terminal status)."""

    async def has_status() -> bool:
        current = await client.get_status(instance_id)
        assert current is not None
        assert current.runtime_status is status
        return True

    await assert_eventually(has_status, timeout=timeout)
