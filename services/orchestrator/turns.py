"""Turns on the event loop: a process's partitions share one loop, and a raised event goes
ahead of the bulk (ADR 39).

Every partition a process holds decides its batches on the process's one event loop, in
stretches of code that do not wait for anything (parsing, replaying, deciding, recording).
Under a burst, on a machine whose cores Postgres and RabbitMQ share, such a stretch over a
batch of 256 messages held the loop for 100 to 300 ms: a raised event waited for every other
partition's stretch, then for its own partition's batch in flight, before its own short batch.

So a batch's stretches are cut into slices (``Turn.pause`` between instances, at most
``slice_seconds`` apart), and while an event waits in a partition (``urgent``), the other
partitions' batches give way at each pause, for at most ``give_way_seconds`` each time: the
event's partition finishes its batch in flight and then commits the event with the loop to
itself. Bulk work is held back only while an event waits, and never for long, so a steady
stream of events cannot stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

SLICE_SECONDS = 0.002
GIVE_WAY_SECONDS = 0.05


class Turns:
    """Which partitions of the process have an event waiting, and the pauses that give way
    to them."""

    def __init__(
        self, slice_seconds: float = SLICE_SECONDS, give_way_seconds: float = GIVE_WAY_SECONDS
    ) -> None:
        self.slice_seconds = slice_seconds
        self._give_way_seconds = give_way_seconds
        self._urgent: set[int] = set()
        self._none_urgent = asyncio.Event()
        self._none_urgent.set()

    def urgent(self, partition: int, waiting: bool) -> None:
        """Say whether an event waits in ``partition`` (arrived, not yet committed)."""
        if waiting:
            self._urgent.add(partition)
            self._none_urgent.clear()
        else:
            self._urgent.discard(partition)
            if not self._urgent:
                self._none_urgent.set()

    def is_urgent(self, partition: int | None) -> bool:
        return partition in self._urgent

    async def give_way(self, partition: int | None) -> None:
        """Wait while an event waits in another partition (for ``give_way_seconds`` at most);
        return at once otherwise."""
        if not self._urgent or partition in self._urgent:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_urgent.wait(), self._give_way_seconds)

    def turn(
        self, partition: int | None, on_pause: Callable[[], Awaitable[None]] | None = None
    ) -> Turn:
        """The pauses of one batch of ``partition``; ``on_pause`` runs at each (a batch of
        starts steps aside for work in progress there, ADR 40)."""
        return Turn(self, partition, on_pause)


class Turn:
    """One batch's pauses: each lets the loop run something else once the batch has held it
    for a slice."""

    def __init__(
        self,
        turns: Turns,
        partition: int | None,
        on_pause: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._turns = turns
        self._partition = partition
        self._on_pause = on_pause
        self._since = time.perf_counter()

    async def pause(self) -> None:
        """Between two instances' work: give the loop up when this slice is spent."""
        if time.perf_counter() - self._since < self._turns.slice_seconds:
            return
        if self._turns.is_urgent(self._partition):
            await asyncio.sleep(0)
        else:
            await self._turns.give_way(self._partition)
            await asyncio.sleep(0)
        if self._on_pause is not None:
            await self._on_pause()
        self._since = time.perf_counter()


NO_TURNS = Turns(slice_seconds=float("inf"))
"""For a handler used on its own (tests, tools): never pauses."""
