"""A batch of plain-function calls runs on as few threads as it needs (thread_batches)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_asyncio

from services.common.thread_batches import ThreadBatch

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def threads() -> AsyncIterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=8)
    yield executor
    executor.shutdown(wait=True)


def recorder(value: int, seen: list[tuple[int, str]]) -> Callable[[], int]:
    def call() -> int:
        seen.append((value, threading.current_thread().name))
        return value * 10

    return call


async def test_short_calls_run_in_order_on_one_thread(threads: ThreadPoolExecutor) -> None:
    seen: list[tuple[int, str]] = []
    # Growing is a second away: these calls never wait that long.
    batch = ThreadBatch(threads, [recorder(i, seen) for i in range(200)], grow_after=1.0)

    results = await asyncio.gather(*batch.futures)

    assert results == [i * 10 for i in range(200)]
    assert [value for value, _ in seen] == list(range(200))
    assert len({thread for _, thread in seen}) == 1
    assert batch.threads == 1


async def test_a_slow_call_does_not_hold_the_others_back(threads: ThreadPoolExecutor) -> None:
    release = threading.Event()

    def slow() -> str:
        release.wait(timeout=30)
        return "slow"

    calls: list[Callable[[], str]] = [slow, *(lambda i=i: f"quick {i}" for i in range(20))]
    batch = ThreadBatch(threads, calls, grow_after=0.001)
    try:
        quick = await asyncio.wait_for(asyncio.gather(*batch.futures[1:]), timeout=10)
        assert quick == [f"quick {i}" for i in range(20)]
        assert not batch.futures[0].done()  # still blocked: the others went past it
        assert batch.threads >= 2
    finally:
        release.set()
    assert await batch.futures[0] == "slow"


async def test_slow_calls_get_as_many_threads_as_the_slots_allow(
    threads: ThreadPoolExecutor,
) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)  # the call's own work, which takes a while
        with lock:
            running -= 1

    slots = asyncio.Semaphore(3)
    batch = ThreadBatch(threads, [call] * 12, slots=slots, grow_after=0.001)
    await asyncio.gather(*batch.futures)

    assert most == 3
    assert batch.threads == 3
    # Every thread gave its slot back.
    for _ in range(3):
        await asyncio.wait_for(slots.acquire(), timeout=5)


async def test_a_call_that_raises_fails_only_its_own_future(threads: ThreadPoolExecutor) -> None:
    def broken() -> int:
        raise ValueError("bad input")

    batch = ThreadBatch(threads, [lambda: 1, broken, lambda: 3], grow_after=1.0)
    outcomes = await asyncio.gather(*batch.futures, return_exceptions=True)

    assert outcomes[0] == 1
    assert outcomes[2] == 3
    assert isinstance(outcomes[1], ValueError)
    assert str(outcomes[1]) == "bad input"


async def test_calls_not_started_fail_when_the_executor_is_shut_down() -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown(wait=True)

    batch = ThreadBatch(executor, [lambda: 1, lambda: 2])
    outcomes = await asyncio.gather(*batch.futures, return_exceptions=True)

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes), outcomes


async def test_cancelling_the_batch_cancels_the_calls_not_yet_started(
    threads: ThreadPoolExecutor,
) -> None:
    release = threading.Event()
    started = threading.Event()

    def first() -> str:
        started.set()
        release.wait(timeout=30)
        return "first"

    slots = asyncio.Semaphore(1)  # one thread: the rest wait behind the first call
    batch = ThreadBatch(threads, [first, lambda: "second", lambda: "third"], slots=slots)
    try:
        await asyncio.wait_for(asyncio.to_thread(started.wait, 10), timeout=10)
        batch.cancel()
        await asyncio.wait_for(asyncio.wait(batch.futures[1:]), timeout=5)
        assert all(future.cancelled() for future in batch.futures[1:])
    finally:
        release.set()
    assert await batch.futures[0] == "first"
