"""The Python client: start orchestrations, read their status, wait for them.

It talks to the event store and the broker directly, the way the client service's HTTP API
does on a caller's behalf::

    async with await DurableClient.connect(CommonSettings()) as client:
        instance_id = await client.start_new("hello_cities", input=None)
        status = await client.wait_for_completion(instance_id, timeout=30)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import asyncpg

from contracts import (
    Envelope,
    ExecutionStarted,
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
    InstanceStatus,
    NewInstance,
    fetch_instance,
    insert_instances_txn,
)
from services.common.outbox import insert_outbox_txn, publish_committed
from services.common.settings import CommonSettings


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
    async def connect(cls, settings: CommonSettings, *, name: str = "client") -> DurableClient:
        """A client with its own connection pool and broker connection (closed by ``close``)."""
        pool = await create_pool(settings.database_url, min_size=1, max_size=5)
        try:
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
    ) -> str:
        """Start an orchestration; return its instance id (generated when not given).

        The instance exists (Pending) as soon as this returns. Raises ``InstanceExistsError``
        when ``instance_id`` is already in use.
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

    async def get_history(self, instance_id: str) -> list[StoredEvent]:
        """The instance's event stream (every execution), oldest first."""
        return await load_history(self._pool, instance_id)

    async def registered_orchestrators(self) -> set[str]:
        """Names of the orchestrators the deployment's orchestrator services have registered."""
        return await registered_orchestrators(self._pool)
