"""Timer fires that arrive early, held in memory until they are due (ADR 12, ADR 16).

The delay cascade delivers fires thirty seconds early (``dispatch.ARRIVE_EARLY_SECONDS``), so
that the time it takes to publish a burst of them and to pass the cascade's hops does not make
them late; the handler returns the fires of timers due within that margin without sending them
at all. Each is acknowledged and kept in memory until its due time, when it is released into
the partition's batches; what keeps it durable meanwhile is its timer row in Postgres: if this
process dies, or loses the partition, the timer sweeper fires it (late by the grace period).
When the process hands the partition over (a rebalance, a stop), it sends the fires it holds
back to the partition queue instead, for the next owner to hold (``hand_over``). A
fire earlier than the margin by more than a few seconds (a timer longer than the cascade's
range, or a clock that is off) is sent through the cascade again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage

from contracts import OrchestratorMessage, TimerFired, Topology
from durable.broker import Publisher, PublishFailedError
from services.orchestrator.acknowledgements import Acknowledgements
from services.orchestrator.dispatch import ARRIVE_EARLY_SECONDS, delayed

# Earlier than this means the timer is longer than the cascade's range, or a clock is off.
REDELAY_AFTER_SECONDS = ARRIVE_EARLY_SECONDS + 3.0


class EarlyFires:
    """Holds the early fires of one partition and ``release``-s each when it is due."""

    def __init__(
        self,
        publisher: Publisher,
        topology: Topology,
        acks: Acknowledgements,
        release: Callable[[OrchestratorMessage], None],
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._acks = acks
        self._release = release
        self._held: dict[uuid.UUID, tuple[OrchestratorMessage, asyncio.TimerHandle]] = {}

    async def held_until_due(
        self, delivery: AbstractIncomingMessage | None, message: OrchestratorMessage
    ) -> bool:
        """Whether ``message`` is a fire that arrived early and was set aside (``delivery``,
        when given, settled): held until due, or sent through the cascade again."""
        if not isinstance(message.body, TimerFired):
            return False
        now = datetime.now(UTC)
        early_by = (message.body.fire_at - now).total_seconds()
        if early_by <= 0:
            return False
        if early_by > REDELAY_AFTER_SECONDS and delivery is not None:
            try:
                await self._publisher.publish(delayed(self._topology, message, now))
            except PublishFailedError:
                await self._acks.requeue([delivery])
                return True
            await self._acks.ack(delivery)
            return True
        if delivery is not None:
            await self._acks.ack(delivery)
        self._hold(message, early_by)
        return True

    def hold(self, fires: Iterable[OrchestratorMessage]) -> None:
        """Hold timer ``fires`` a committed batch returned until each is due."""
        now = datetime.now(UTC)
        for fire in fires:
            assert isinstance(fire.body, TimerFired)
            self._hold(fire, max((fire.body.fire_at - now).total_seconds(), 0.0))

    def drop(self) -> None:
        """Forget every fire held (the timer sweeper fires them)."""
        self.hand_over()

    def hand_over(self) -> list[OrchestratorMessage]:
        """Stop holding the fires held, and return them (to send them to the next owner)."""
        fires = []
        for message, handle in self._held.values():
            handle.cancel()
            fires.append(message)
        self._held.clear()
        return fires

    def _hold(self, message: OrchestratorMessage, seconds: float) -> None:
        key = message.envelope.message_id
        if key in self._held:
            return  # another copy of the same fire is already waiting
        loop = asyncio.get_running_loop()
        self._held[key] = (message, loop.call_later(seconds, self._due, message))

    def _due(self, message: OrchestratorMessage) -> None:
        self._held.pop(message.envelope.message_id, None)
        self._release(message)
