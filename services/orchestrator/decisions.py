"""One batch decides at a time in a process, and work in progress goes first (ADR 40).

A process's partitions decide their batches on one event loop. Interleaved in slices (ADR 39),
eight partitions' batches of starts each took about eight times as long from the clock their
episodes read to their commit: with W5's 100,000 timers, batches committed timers that had
been due for more than a second, and fires due meanwhile waited behind the starts. Decided one
at a time, a batch reads the clock when its turn comes, and is written as soon as it is
decided.

Which batch goes next: one whose instances the process has in memory (results, fires, events:
work in progress) before one that must load an instance (a start, an instance evicted), so
that a burst of starts does not hold back the instances already running. Work in progress
decides in a fraction of a millisecond where a batch of starts may take 100 ms; so that a
steady stream of it cannot stop the starts, a batch of starts goes next once work in progress
has held the slot for ``BULK_WAIT_SECONDS`` in all since it began to wait (time held, not time
waited: with every partition's starts waiting at once, the fires due meanwhile would otherwise
wait for all of them, as they did when it was time waited).

A batch holds the slot while it decides, loading the instances it must lock included; it gives
the slot up before it runs local activities inline and before it writes. Raised events taken
express (ADR 39) decide beside the holder without waiting for the slot. Holding it, a batch
still gives the loop up every slice (``turns``), for I/O and for those events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

BULK_WAIT_SECONDS = 0.1


@dataclass(eq=False)
class _Waiter:
    ongoing: bool
    # Work in progress's time in the slot when this one began to wait.
    ongoing_held_before: float
    future: asyncio.Future[None] = field(repr=False)
    # A batch of starts that stepped aside for work in progress, to take the slot back.
    resuming: bool = False


class Deciding:
    """The slot as one batch holds it; ``done`` gives it up (once, early or at the end)."""

    def __init__(self, slot: DecisionSlot | None, ongoing: bool) -> None:
        self._slot = slot
        self._ongoing = ongoing

    async def step_aside(self) -> None:
        """Between two instances of a batch of starts: let the work in progress waiting
        decide first, then take the slot back before any other batch of starts."""
        slot = self._slot
        if slot is None or self._ongoing or not slot.work_in_progress_waits:
            return
        self._slot = None  # not held meanwhile: a cancel must not release it again
        await slot._step_aside()
        self._slot = slot

    def done(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot._release()


class DecisionSlot:
    """Lets one batch of the process decide at a time (``take``), work in progress first."""

    def __init__(
        self,
        bulk_wait_seconds: float = BULK_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bulk_wait_seconds = bulk_wait_seconds
        self._clock = clock
        self._held = False
        self._waiting: list[_Waiter] = []
        # Who holds the slot, since when, and work in progress's time in it so far.
        self._holder_ongoing = False
        self._held_since = 0.0
        self._ongoing_held = 0.0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def work_in_progress_waits(self) -> bool:
        return any(waiter.ongoing for waiter in self._waiting)

    @contextlib.asynccontextmanager
    async def take(self, *, ongoing: bool, express: bool = False) -> AsyncIterator[Deciding]:
        """Hold the slot for the block (an ``ongoing`` batch's instances are all in memory);
        an ``express`` batch holds nothing and does not wait."""
        if express:
            yield Deciding(None, ongoing)
            return
        await self._acquire(ongoing)
        decision = Deciding(self, ongoing)
        try:
            yield decision
        finally:
            decision.done()

    async def _acquire(self, ongoing: bool) -> None:
        if not self._held and not self._waiting:
            self._held = True
            self._holding(ongoing)
            return
        await self._wait(self._in_line(ongoing, resuming=False))

    async def _step_aside(self) -> None:
        waiter = self._in_line(ongoing=False, resuming=True)  # in line before the slot passes
        self._release()
        await self._wait(waiter)

    def _in_line(self, ongoing: bool, *, resuming: bool) -> _Waiter:
        held_before = self._ongoing_held + self._holder_ongoing_so_far()
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(ongoing, held_before, future, resuming)
        self._waiting.append(waiter)
        return waiter

    async def _wait(self, waiter: _Waiter) -> None:
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif not waiter.future.cancelled():
                self._release()  # handed the slot as it was cancelled: pass it on
            raise

    def _holding(self, ongoing: bool) -> None:
        self._holder_ongoing, self._held_since = ongoing, self._clock()

    def _holder_ongoing_so_far(self) -> float:
        return self._clock() - self._held_since if self._held and self._holder_ongoing else 0.0

    def _release(self) -> None:
        self._ongoing_held += self._holder_ongoing_so_far()
        while self._waiting:
            waiter = self._next()
            self._waiting.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_result(None)  # the slot passes to it, still held
                self._holding(waiter.ongoing)
                return
        self._held = False

    def _next(self) -> _Waiter:
        """The first batch of starts that work in progress has kept waiting long enough, else
        the first of work in progress, else the batch of starts that stepped aside for it,
        else the first in line."""
        for waiter in self._waiting:
            waited = self._ongoing_held - waiter.ongoing_held_before
            if not waiter.ongoing and waited >= self._bulk_wait_seconds:
                return waiter
        ongoing = next((waiter for waiter in self._waiting if waiter.ongoing), None)
        resuming = next((waiter for waiter in self._waiting if waiter.resuming), None)
        return ongoing or resuming or self._waiting[0]
