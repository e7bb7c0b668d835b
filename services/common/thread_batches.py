"""Running a batch of plain-function calls on as few threads as they need.

Handing each call of a batch to the thread pool on its own costs more than a short call does:
a future, waking a pool thread, a handoff of the GIL and waking the event loop, for every
call. Here one thread takes the batch's calls one after the other and hands their results
back to the loop a few at a time. Calls that turn out to be slow (waiting on I/O, as
activities often do) must not hold the rest back, so while calls are still waiting to start,
every ``grow_after`` seconds as many threads again join in (1, 2, 4, ...), each taking the
next waiting call, up to what ``slots`` allows. Short calls finish on the first thread before
it ever grows; slow ones all run at once after a few ``grow_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")

GROW_AFTER_SECONDS = 0.002
# How long a thread keeps results before handing them to the loop (one wake-up for all).
_HAND_BACK_SECONDS = 0.001


class ThreadBatch(Generic[T]):
    """Calls running on a few threads of ``executor``: ``futures[i]`` is the outcome of
    ``calls[i]``, set on the event loop (a call's exception is its future's, and only its).

    Each thread holds one of ``slots`` (when given) while it runs calls, so the batch never
    runs more calls at once than the semaphore allows.
    """

    def __init__(
        self,
        executor: Executor,
        calls: Sequence[Callable[[], T]],
        *,
        slots: asyncio.Semaphore | None = None,
        grow_after: float = GROW_AFTER_SECONDS,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = executor
        self._calls = calls
        self._slots = slots
        self._grow_after = grow_after
        self._waiting = deque(range(len(calls)))  # taken with popleft, safe across threads
        self.threads = 0
        """Threads the batch has used so far."""
        self.futures: list[asyncio.Future[T]] = [self._loop.create_future() for _ in calls]
        self._coordinator = asyncio.ensure_future(self._grow())
        self._coordinator.add_done_callback(self._coordinator_done)

    async def _grow(self) -> None:
        wave = 1
        while self._waiting:
            for _ in range(wave):
                if self._slots is not None:
                    await self._slots.acquire()
                if not self._waiting:
                    self._release_slot()
                    return
                try:
                    self._executor.submit(contextvars.copy_context().run, self._take_calls)
                except BaseException:
                    self._release_slot()
                    raise
                self.threads += 1
            wave = self.threads
            await asyncio.sleep(self._grow_after)

    def _take_calls(self) -> None:
        """In a thread: run waiting calls until none is left, handing back their outcomes."""
        done: list[tuple[int, T | None, BaseException | None]] = []
        handed = time.monotonic()
        while True:
            try:
                index = self._waiting.popleft()
            except IndexError:
                break
            try:
                done.append((index, self._calls[index](), None))
            except BaseException as error:  # the caller's to see, on this call's future
                done.append((index, None, error))
            now = time.monotonic()
            if now - handed >= _HAND_BACK_SECONDS:
                self._hand_back(done, finished=False)
                done, handed = [], now
        self._hand_back(done, finished=True)

    def _hand_back(
        self, done: list[tuple[int, T | None, BaseException | None]], *, finished: bool
    ) -> None:
        # A closed loop raises RuntimeError: nobody is waiting for these any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._settle, done, finished)

    def _settle(
        self, done: list[tuple[int, T | None, BaseException | None]], finished: bool
    ) -> None:
        for index, value, error in done:
            future = self.futures[index]
            if future.done():
                continue
            if error is None:
                future.set_result(value)  # type: ignore[arg-type]  # None only with an error
            else:
                future.set_exception(error)
        if finished:
            self._release_slot()

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _coordinator_done(self, coordinator: asyncio.Future[None]) -> None:
        """If the batch could not start its calls (cancelled, executor shut down), the calls
        that never started fail rather than leave their futures waiting for ever."""
        error = None if coordinator.cancelled() else coordinator.exception()
        if error is None and not coordinator.cancelled():
            return
        while self._waiting:
            try:
                future = self.futures[self._waiting.popleft()]
            except IndexError:
                break  # a thread took the last one meanwhile
            if future.done():
                continue
            if error is None:
                future.cancel()
            else:
                future.set_exception(error)

    def cancel(self) -> None:
        """Start no more calls (those running finish; their outcomes are dropped)."""
        self._coordinator.cancel()
