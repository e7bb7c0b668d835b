"""Starting instances together: the starts that arrive while one batch is being written go
in the next, as one statement and one round of publisher confirms.

Nothing waits to fill a batch: an idle client writes a start at once, alone. Under load (many
concurrent ``start_new`` calls, or the HTTP API's requests) each batch takes what arrived
during the one before, which saves most of the round trips, commits and socket writes that a
start costs on its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from contracts import (
    ORCHESTRATOR_MESSAGE_BATCH,
    Envelope,
    ExecutionStarted,
    OrchestratorMessage,
    Topology,
    deterministic_message_id,
)
from contracts.limits import check_instance_id, check_short_string
from contracts.values import to_json_value
from durable.broker import OutgoingMessage, Publisher
from durable.store.errors import is_connection_failure, is_unavailable
from durable.store.instances import NewInstance
from durable.store.outbox import OutboxCleaner, OutboxRecord, publish_committed
from durable.store.starts import Start, insert_start, insert_starts, start_was_written_txn
from durable.versioning import check_version

log = structlog.get_logger(__name__)

_Start = tuple[NewInstance, OutgoingMessage, "asyncio.Future[OutboxRecord | None]"]

SETTLE_SECONDS = 5.0
"""How long a start whose write was cut off keeps trying to find out whether it committed."""


def new_start(
    topology: Topology,
    orchestrator_name: str,
    instance_id: str | None,
    input_: Any,
    *,
    correlation_id: str | None = None,
    version: str | None = None,
    traceparent: str | None = None,
) -> tuple[NewInstance, OutgoingMessage]:
    """A start's Pending row and its ``ExecutionStarted`` message, routed to the instance's
    partition (the instance id generated when not given). Raises ``ValueRefusedError`` for
    an id, name, version or input that could not be stored or sent. ``traceparent`` (W3C)
    puts the instance's work in the caller's trace (ADR 32)."""
    if instance_id is not None:
        check_instance_id(instance_id)
    check_short_string(orchestrator_name, "the orchestrator name")
    if correlation_id is not None:
        check_short_string(correlation_id, "the correlation id")
    if version is not None:
        check_version(version)
    instance_id = instance_id or uuid.uuid4().hex
    execution_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    payload = to_json_value(input_, "the orchestration input")
    message = OrchestratorMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(instance_id, execution_id, "start"),
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=correlation_id or instance_id,
            type="ExecutionStarted",
            sent_at=now,
            traceparent=traceparent,
        ),
        body=ExecutionStarted(
            timestamp=now,
            name=orchestrator_name,
            execution_id=execution_id,
            input=payload,
            version=version,
            traceparent=traceparent,
        ),
    )
    instance = NewInstance(
        instance_id=instance_id,
        name=orchestrator_name,
        execution_id=execution_id,
        correlation_id=message.envelope.correlation_id,
        input=payload,
        created_at=now,
        version=version,
    )
    exchange, routing_key = topology.orchestrator_route(instance_id)
    return instance, OutgoingMessage.of(message, exchange, routing_key)


class StartBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        cleaner: OutboxCleaner,
        *,
        max_batch: int = 256,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._cleaner = cleaner
        self._max_batch = max_batch
        self._waiting: list[_Start] = []
        self._writer: asyncio.Task[None] | None = None

    async def start(self, instance: NewInstance, message: OutgoingMessage) -> OutboxRecord | None:
        """Create the Pending instance with its start message and publish it; ``None`` (and
        nothing written) when the id is taken. Returns once the message is confirmed, or left
        in the outbox for the sweeper when the broker cannot take it."""
        future: asyncio.Future[OutboxRecord | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((instance, message, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="start-batches")
        # The batch goes on if this caller is cancelled: the others in it wait for it.
        return await asyncio.shield(future)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: len(batch)]
                try:
                    await self._write(batch)
                except Exception as error:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                except BaseException:
                    _cancel(batch)
                    raise
        finally:
            # Cancelled (its event loop is closing): the starts not yet written never will be.
            _cancel(self._waiting)
            self._waiting.clear()

    async def _write(self, batch: list[_Start]) -> None:
        try:
            records = await insert_starts(
                self._pool, [Start(instance, message) for instance, message, _ in batch]
            )
        except Exception as error:
            if is_connection_failure(error) or len(batch) == 1:
                raise  # the outcome is unknown, or it is this start's own error
            # One start the database refuses must not fail the others: each on its own.
            log.warning("starts.batch_refused", size=len(batch), error=repr(error))
            for start in batch:
                await self._write_one(start)
            return
        # The starts for one partition travel together (ADR 17).
        await publish_committed(
            self._cleaner,
            self._publisher,
            [record for record in records if record is not None],
            carried_as=ORCHESTRATOR_MESSAGE_BATCH,
        )
        for (_, _, future), record in zip(batch, records, strict=True):
            if not future.done():
                future.set_result(record)

    async def _write_one(self, start: _Start) -> None:
        instance, message, future = start
        try:
            record = await insert_start(self._pool, Start(instance, message))
            if record is not None:
                await publish_committed(self._cleaner, self._publisher, [record])
        except Exception as error:
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(record)


def _cancel(starts: list[_Start]) -> None:
    for _, _, future in starts:
        if not future.done():
            future.cancel()


async def settle_start(pool: asyncpg.Pool, instance: NewInstance) -> bool | None:
    """Whether ``instance`` was created, for a start whose connection was lost while its
    statement was on its way or running (it may have committed); ``None`` when the database
    did not answer within ``SETTLE_SECONDS``.

    The probe (``start_was_written_txn``) waits for the lost statement to finish; it is
    rolled back, and what is left is what the lost statement did.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            async with pool.acquire(timeout=max(deadline - time.monotonic(), 0.1)) as connection:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    return await start_was_written_txn(connection, instance)
                finally:
                    await transaction.rollback()
        except Exception as error:
            if not is_unavailable(error) or time.monotonic() >= deadline:
                log.warning(
                    "start.outcome_unknown", instance_id=instance.instance_id, error=repr(error)
                )
                return None
            await asyncio.sleep(0.2)
