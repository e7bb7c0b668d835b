"""The Python client: start orchestrations, read their status, wait for them.

It talks to the event store and the broker directly, the way the client service's HTTP API
does on a caller's behalf::

    async with await DurableClient.connect(CommonSettings()) as client:
        instance_id = await client.start_new("hello_cities", input=None)
        status = await client.wait_for_completion(instance_id, timeout=30)
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import asyncpg

from contracts import (
    Envelope,
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    InboundEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    Topology,
    deterministic_message_id,
)
from contracts.values import to_json_value
from services.common.amqp import OutgoingMessage, Publisher
from services.common.db import create_pool
from services.common.events import StoredEvent, load_history
from services.common.functions import registered_orchestrators
from services.common.instances import (
    InstanceQuery,
    InstanceStatus,
    NewInstance,
    ended_instance_ids_txn,
    fetch_instance,
    insert_instances_txn,
    purge_instances_txn,
    query_instances,
)
from services.common.outbox import insert_outbox_txn, publish_committed
from services.common.settings import CommonSettings


class InstanceNotFoundError(LookupError):
    """No instance has this id."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no instance {instance_id!r}")
        self.instance_id = instance_id


class InstanceEndedError(Exception):
    """The instance has ended (Completed, Failed or Terminated) and takes no more events."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(f"instance {instance_id!r} has ended ({status.value})")
        self.instance_id = instance_id
        self.status = status


class InstanceRunningError(Exception):
    """The operation needs an ended instance, and this one has not ended."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(
            f"instance {instance_id!r} is {status.value}; terminate it or wait for it to end"
        )
        self.instance_id = instance_id
        self.status = status


@dataclass(frozen=True)
class InstancePage:
    """One page of a query; pass ``continuation_token`` back to get the next one."""

    instances: list[InstanceStatus]
    continuation_token: str | None


class InstanceExistsError(Exception):
    """``start_new`` named an instance id that is already in use."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(f"instance {instance_id!r} already exists and is {status.value}")
        self.instance_id = instance_id
        self.status = status


class DurableClient:
    """Starts and queries orchestration instances."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        topology: Topology,
        *,
        owns_resources: bool = False,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topology = topology
        self._owns_resources = owns_resources

    @classmethod
    async def connect(
        cls, settings: CommonSettings, *, name: str = "client", lazy_broker: bool = False
    ) -> DurableClient:
        """A client with its own connection pool and broker connection (closed by ``close``).

        With ``lazy_broker``, the broker is only connected on the first publish, so read-only
        use (status, lists, history) works while RabbitMQ is down.
        """
        pool = await create_pool(settings.database_url, min_size=1, max_size=5)
        try:
            if lazy_broker:
                publisher = Publisher(settings.amqp_url, settings.topology, f"{name}.publish")
            else:
                publisher = await Publisher.open(
                    settings.amqp_url, settings.topology, f"{name}.publish"
                )
        except BaseException:
            await pool.close()
            raise
        return cls(pool, publisher, settings.topology, owns_resources=True)

    async def close(self) -> None:
        if self._owns_resources:
            await self._publisher.close()
            await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start_new(
        self,
        orchestrator_name: str,
        instance_id: str | None = None,
        input: Any = None,
        *,
        correlation_id: str | None = None,
        replace_ended: bool = False,
    ) -> str:
        """Start an orchestration; return its instance id (generated when not given).

        The instance exists (Pending) as soon as this returns. Raises ``InstanceExistsError``
        when ``instance_id`` is already in use; with ``replace_ended``, only when that instance
        has not ended: one that has ended is purged and replaced in the same transaction (what
        Durable Functions does by default when a start names an ended instance).
        """
        instance_id = instance_id or uuid.uuid4().hex
        execution_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        payload = to_json_value(input, "the orchestration input")
        message = OrchestratorMessage(
            envelope=Envelope(
                message_id=deterministic_message_id(instance_id, execution_id, "start"),
                instance_id=instance_id,
                execution_id=execution_id,
                correlation_id=correlation_id or instance_id,
                type="ExecutionStarted",
                sent_at=now,
            ),
            body=ExecutionStarted(
                timestamp=now, name=orchestrator_name, execution_id=execution_id, input=payload
            ),
        )
        instance = NewInstance(
            instance_id=instance_id,
            name=orchestrator_name,
            execution_id=execution_id,
            correlation_id=message.envelope.correlation_id,
            input=payload,
            created_at=now,
        )
        exchange, routing_key = self._topology.orchestrator_route(instance_id)
        async with self._pool.acquire() as connection, connection.transaction():
            if replace_ended:
                await purge_instances_txn(connection, [instance_id])
            if not await insert_instances_txn(connection, [instance]):
                existing = await fetch_instance(connection, instance_id)
                status = existing.runtime_status if existing else OrchestrationStatus.PENDING
                raise InstanceExistsError(instance_id, status)
            records = await insert_outbox_txn(
                connection, [OutgoingMessage.of(message, exchange, routing_key)]
            )
        await publish_committed(self._pool, self._publisher, records)
        return instance_id

    async def get_status(self, instance_id: str) -> InstanceStatus | None:
        """The instance's status, or ``None`` when there is no such instance."""
        return await fetch_instance(self._pool, instance_id)

    async def wait_for_completion(
        self, instance_id: str, timeout: float = 60.0, poll_interval: float = 0.05
    ) -> InstanceStatus:
        """Wait until the instance is Completed, Failed or Terminated; return its status.

        Raises ``TimeoutError`` when it has not ended within ``timeout`` seconds, and
        ``KeyError`` when there is no such instance.
        """
        deadline = time.monotonic() + timeout
        interval = poll_interval
        while True:
            status = await self.get_status(instance_id)
            if status is None:
                raise KeyError(instance_id)
            if status.runtime_status.is_terminal:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"instance {instance_id!r} is still {status.runtime_status.value} "
                    f"after {timeout} s"
                )
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        *,
        message_id: uuid.UUID | None = None,
    ) -> None:
        """Send an event to a running instance (kept until the orchestrator waits for it).

        Pass a ``message_id`` derived from what the event means (e.g. the id of the message
        that carried it) to raise it at most once: the orchestrator drops a second event with
        the same id. Raises ``InstanceNotFoundError`` or ``InstanceEndedError``.
        """
        data = to_json_value(event_data, f"the data of event {event_name!r}")
        now = datetime.now(UTC)
        event = EventRaised(timestamp=now, name=event_name, input=data)
        await self._send(instance_id, event, message_id=message_id)

    async def terminate(self, instance_id: str, reason: Any = None) -> None:
        """End a running or suspended instance as Terminated; its pending work is dropped."""
        reason = to_json_value(reason, "the termination reason")
        await self._send(
            instance_id, ExecutionTerminated(timestamp=datetime.now(UTC), reason=reason)
        )

    async def suspend(self, instance_id: str, reason: Any = None) -> None:
        """Pause an instance: results and events that arrive are kept until ``resume``."""
        reason = to_json_value(reason, "the suspension reason")
        await self._send(
            instance_id, ExecutionSuspended(timestamp=datetime.now(UTC), reason=reason)
        )

    async def resume(self, instance_id: str, reason: Any = None) -> None:
        """Resume a suspended instance; what arrived meanwhile is processed in order."""
        reason = to_json_value(reason, "the resumption reason")
        now = datetime.now(UTC)
        await self._send(instance_id, ExecutionResumed(timestamp=now, reason=reason))

    async def _send(
        self, instance_id: str, event: InboundEvent, *, message_id: uuid.UUID | None = None
    ) -> None:
        status = await self.get_status(instance_id)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        if status.runtime_status.is_terminal:
            raise InstanceEndedError(instance_id, status.runtime_status)
        message = OrchestratorMessage(
            envelope=Envelope(
                message_id=message_id or uuid.uuid4(),
                instance_id=instance_id,
                correlation_id=status.correlation_id,
                type=event.event_type,
                sent_at=datetime.now(UTC),
            ),
            body=event,
        )
        exchange, routing_key = self._topology.orchestrator_route(instance_id)
        await self._publisher.publish(OutgoingMessage.of(message, exchange, routing_key))

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        *,
        instance_id_prefix: str | None = None,
        name: str | None = None,
        top: int = 100,
        continuation_token: str | None = None,
    ) -> InstancePage:
        """Instances matching every given filter, oldest first, ``top`` per page."""
        query = InstanceQuery(
            created_from=created_time_from,
            created_to=created_time_to,
            statuses=tuple(runtime_status) if runtime_status is not None else None,
            instance_id_prefix=instance_id_prefix,
            name=name,
        )
        after = decode_continuation_token(continuation_token) if continuation_token else None
        rows = await query_instances(self._pool, query, after=after, limit=top + 1)
        page, more = rows[:top], len(rows) > top
        token = encode_continuation_token(page[-1]) if more and page else None
        return InstancePage(page, token)

    async def purge_instance_history(self, instance_id: str) -> int:
        """Delete an ended instance and its history; return 1, or 0 if there was none.

        Raises ``InstanceRunningError`` when the instance has not ended.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            deleted = await purge_instances_txn(connection, [instance_id])
            if not deleted:
                status = await fetch_instance(connection, instance_id)
                if status is not None:
                    raise InstanceRunningError(instance_id, status.runtime_status)
        return deleted

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        *,
        batch_size: int = 500,
    ) -> int:
        """Delete every ended instance matching the filters, ``batch_size`` per transaction
        (so purging millions never holds a long transaction); return how many were deleted."""
        query = InstanceQuery(
            created_from=created_time_from,
            created_to=created_time_to,
            statuses=tuple(runtime_status) if runtime_status is not None else None,
        )
        total = 0
        while True:
            async with self._pool.acquire() as connection, connection.transaction():
                ids = await ended_instance_ids_txn(connection, query, batch_size)
                deleted = await purge_instances_txn(connection, ids)
            total += deleted
            if len(ids) < batch_size:
                return total

    async def get_history(self, instance_id: str) -> list[StoredEvent]:
        """The instance's event stream (every execution), oldest first."""
        return await load_history(self._pool, instance_id)

    async def registered_orchestrators(self) -> set[str]:
        """Names of the orchestrators the deployment's orchestrator services have registered."""
        return await registered_orchestrators(self._pool)


def encode_continuation_token(last: InstanceStatus) -> str:
    """An opaque token for the page after ``last`` (its creation time and id)."""
    raw = json.dumps([last.created_at.isoformat(), last.instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continuation_token(token: str) -> tuple[datetime, str]:
    """Raises ``ValueError`` for a token this client did not produce."""
    try:
        created, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created), str(instance_id)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid continuation token {token!r}") from error
