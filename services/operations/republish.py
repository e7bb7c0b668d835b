"""Re-publishing stored events, in a stable order, without skipping late commits.

The order is ``(transaction_id, global_position)``: transactions in the order of their ids, each
one's events together in position order. An event is read only once its transaction id is
below ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction still running: every
transaction below it has ended, and none can still write below it, so the part of the stream
read so far never grows behind the cursor. An event whose transaction committed after later
positions were written (global positions are drawn at insert, commits land in any order) is
therefore waited for, not skipped.

One refinement keeps each instance's events in seq order: a transaction can take its id, then
wait for an instance's row lock held by a younger transaction, and append that instance's later
events with the lower id. Before publishing an event, an instance's earlier events that are not
yet published are published first; their keys are remembered as ``early`` in the checkpoint, so
they are skipped, not repeated, when the cursor reaches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from pathlib import Path

import aio_pika
import aiormq
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from durable.store import feed
from durable.store.feed import EventKey, StartFilter, StoredLine
from services.operations.checkpoint import Checkpoint, save
from services.operations.session import EXIT_ATTENTION, EXIT_UNREACHABLE, OperationError, Progress

MESSAGE_ID_NAMESPACE = uuid.UUID("5d0c6a8e-3f57-4c1b-9d0e-2f6b8a1c7e43")
IN_FLIGHT = 256
PUBLISH_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.5


class EventPublisher:
    """Publishes event lines to an exchange (routing key: the event type) or a queue, with
    publisher confirms, persistent. A queue must exist and a message to it must be routed
    (``mandatory``); an exchange routes as its bindings say."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange, queue: str | None):
        self._channel = channel
        self._exchange = exchange
        self._queue = queue

    @classmethod
    async def open(cls, connection: AbstractConnection, target: str) -> EventPublisher:
        kind, _, name = target.partition(":")
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
                return cls(channel, channel.default_exchange, name)
            exchange = await channel.get_exchange(name, ensure=True)
            return cls(channel, exchange, None)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise OperationError(EXIT_ATTENTION, f"the broker has no {kind} {name!r}") from None

    async def publish(self, line: StoredLine) -> None:
        message = aio_pika.Message(
            line.body.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id(line),
            correlation_id=line.instance_id,
            type=line.event_type,
            headers={
                "x-instance-id": line.instance_id,
                "x-seq": line.seq,
                "x-global-position": line.key.global_position,
                "x-transaction-id": str(line.key.transaction_id),
            },
        )
        routing_key = self._queue if self._queue is not None else line.event_type
        await self._exchange.publish(
            message, routing_key, mandatory=self._queue is not None, timeout=PUBLISH_TIMEOUT_SECONDS
        )


class Republisher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        checkpoint: Checkpoint,
        checkpoint_path: Path | None,
        start: StartFilter,
        progress: Progress,
        stopping: asyncio.Event,
        *,
        follow: bool = False,
        limit: int | None = None,
        page_size: int = 500,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self.checkpoint = checkpoint
        self._path = checkpoint_path
        self._start = start
        self._progress = progress
        self._stopping = stopping
        self._follow = follow
        self._limit = limit
        self._page_size = page_size
        self.published = 0

    async def run(self) -> bool:
        """Publish until caught up (or, following, until stopped); True if it ran to the end.

        Without ``follow`` the run ends once every transaction older than the run's start has
        ended and its events are published: everything committed before the start is out.
        """
        end = None if self._follow else await feed.snapshot_end(self._pool)
        while not self._stopping.is_set():
            if self._limit is not None and self.published >= self._limit:
                return False
            horizon = await feed.snapshot_horizon(self._pool)
            bound = horizon if end is None else min(horizon, end)
            page = await self._page(bound)
            if page:
                await self._publish_page(page)
                continue
            if end is not None and horizon >= end:
                return True
            if self._progress.due():
                self._progress.say(await self._waiting(horizon))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_SECONDS)
        return False

    async def _page(self, bound: int) -> list[StoredLine]:
        return await feed.events_after(
            self._pool, self.checkpoint.cursor, bound, self._start, self._page_size
        )

    async def _publish_page(self, page: list[StoredLine]) -> None:
        order = await self._emission_order(page)
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        sent: list[tuple[StoredLine, asyncio.Task[None]]] = []

        async def publish(line: StoredLine) -> None:
            try:
                await self._publisher.publish(line)
            finally:
                in_flight.release()

        for line in order:
            if self._stopping.is_set() or (
                self._limit is not None and self.published + len(sent) >= self._limit
            ):
                break
            await in_flight.acquire()
            # Tasks start in creation order and each takes the channel's (FIFO) publish lock
            # before its first suspension, so the broker receives them in this order while
            # up to IN_FLIGHT confirms are outstanding.
            sent.append((line, asyncio.create_task(publish(line))))
        if sent:
            await asyncio.wait([task for _, task in sent])
        failures = [task.exception() for _, task in sent if task.exception() is not None]
        done = {line.key for line, task in sent if task.exception() is None}
        self.checkpoint.advance([line.key for line in page], done)
        self.checkpoint.published += len(done)
        self.published += len(done)
        if self._path is not None:
            save(self._path, self.checkpoint)
        self._progress.update(self._describe)
        if failures:
            raise OperationError(
                EXIT_UNREACHABLE,
                f"a publish was not confirmed ({failures[0]!r}); {len(done)} of this page's events "
                "were, and the checkpoint records exactly those",
            )

    async def _emission_order(self, page: list[StoredLine]) -> list[StoredLine]:
        """The page in key order, with each instance's unpublished earlier events pulled in
        front of its later ones, and events already published early left out."""
        early = self.checkpoint.early
        late = await self._instances_out_of_order(page)
        if not late:
            return [line for line in page if line.key not in early]
        chains = await self._unpublished(late, page)
        order: list[StoredLine] = []
        emitted: set[EventKey] = set()
        for line in page:
            if line.key in early or line.key in emitted:
                continue
            for earlier in chains.get(line.instance_id, []):
                if earlier.seq > line.seq:
                    break
                if earlier.key not in emitted:
                    order.append(earlier)
                    emitted.add(earlier.key)
            if line.key not in emitted:
                order.append(line)
                emitted.add(line.key)
        return order

    async def _instances_out_of_order(self, page: list[StoredLine]) -> set[str]:
        """Instances of the page with an earlier event that is neither published nor ahead of
        it in the page."""
        ahead: set[tuple[str, int]] = set()
        unknown: list[tuple[str, int]] = []
        for line in page:
            if line.seq > 1 and (line.instance_id, line.seq - 1) not in ahead:
                unknown.append((line.instance_id, line.seq - 1))
            ahead.add((line.instance_id, line.seq))
        if not unknown:
            return set()
        keys = await feed.event_keys(self._pool, unknown, self._start)
        cursor, early = self.checkpoint.cursor, self.checkpoint.early
        return {
            instance_id
            for (instance_id, _), key in keys.items()
            if key > cursor and key not in early
        }

    async def _unpublished(
        self, instance_ids: Iterable[str], page: list[StoredLine]
    ) -> dict[str, list[StoredLine]]:
        """Each instance's events up to its last one in the page that are not yet published,
        in seq order."""
        last_seq: dict[str, int] = {}
        for line in page:
            if line.instance_id in instance_ids:
                last_seq[line.instance_id] = max(last_seq.get(line.instance_id, 0), line.seq)
        lines = await feed.events_up_to(self._pool, last_seq, self.checkpoint.cursor, self._start)
        chains: dict[str, list[StoredLine]] = {}
        for line in lines:
            if line.key not in self.checkpoint.early:
                chains.setdefault(line.instance_id, []).append(line)
        return chains

    def _describe(self) -> str:
        cursor = self.checkpoint.cursor
        return f"{self.published:,} events published; up to {cursor.text()}"

    async def _waiting(self, horizon: int) -> str:
        """What the run waits for: new events, or the oldest transaction still running."""
        held_back = await feed.count_held_back(
            self._pool, self.checkpoint.cursor, horizon, self._start, 100_000
        )
        if not held_back:
            return f"{self._describe()}; caught up, waiting for new events"
        oldest = await feed.oldest_transaction(self._pool)
        holder = (
            f" (pid {oldest.pid}, {oldest.state} since {oldest.started_at:%H:%M:%S})"
            if oldest is not None and oldest.started_at is not None
            else ""
        )
        return (
            f"{self._describe()}; {held_back:,} committed events wait for transaction "
            f"{horizon}{holder} to end"
        )


def message_id(line: StoredLine) -> str:
    """The same for every publish of an event, so consumers can drop repeats."""
    return str(
        uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{line.instance_id}|{line.execution_id}|{line.seq}")
    )
