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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import asyncpg

from contracts import (
    Envelope,
    EventRaised,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionSuspended,
    ExecutionTerminated,
    InboundEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    Topology,
    limits,
)
from contracts.limits import check_short_string
from contracts.values import to_json_value
from durable.broker import OutgoingMessage, Publisher
from durable.client.check_status import (
    CheckStatusResponse,
    wait_for_completion_or_check_status,
)
from durable.client.entities import EntityClient
from durable.client.errors import (
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    StartOutcomeUnknownError,
)
from durable.client.queries import InstanceQueries
from durable.client.starts import StartBatcher, new_start, settle_start
from durable.settings import CommonSettings
from durable.store.database import create_pool
from durable.store.instances import ExistingInstancePolicy, NewInstance
from durable.store.outbox import OutboxCleaner, publish_committed
from durable.store.queries import InstanceStatus, fetch_instance, purge_instances_txn
from durable.store.starts import Start, insert_start

__all__ = ["DurableClient", "Started"]

READINESS_SECONDS = 2.0
"""How long a readiness check waits for the database and for the broker."""
SEND_PATIENCE_SECONDS = 10.0
"""How long an event, a termination or another message to an instance is tried again while
the broker refuses it: a quorum queue whose leader's node was lost refuses publishes until
the others have elected a new leader, a few seconds (ADR 28)."""


@dataclass(frozen=True)
class Started:
    """The answer to a start: the instance id, and whether this call created the instance
    (False: it existed already and ``ExistingInstancePolicy.USE_EXISTING`` kept it, and
    ``kept`` is its status as the start found it)."""

    instance_id: str
    created: bool
    kept: InstanceStatus | None = None


class DurableClient(InstanceQueries, EntityClient):
    """Starts and queries orchestration instances.

    ``start_existing`` is what ``start_new`` does with an instance id in use unless a call
    says otherwise (``DF_START_EXISTING``; refusing by default).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        topology: Topology,
        *,
        owns_resources: bool = False,
        start_existing: ExistingInstancePolicy = ExistingInstancePolicy.ERROR,
    ) -> None:
        super().__init__(pool)
        self._publisher = publisher
        self._topology = topology
        self._owns_resources = owns_resources
        self._outbox_cleaner = OutboxCleaner(pool)
        self._starts = StartBatcher(pool, publisher, self._outbox_cleaner)
        self.start_existing = start_existing

    @classmethod
    async def connect(
        cls, settings: CommonSettings, *, name: str = "client", lazy_broker: bool = False
    ) -> DurableClient:
        """A client with its own connection pool and broker connection (closed by ``close``).

        With ``lazy_broker``, the broker is only connected on the first publish, so read-only
        use (status, lists, history) works while RabbitMQ is down. The settings' limits on
        values (``DF_MAX_JSON_DEPTH``, ``DF_MAX_VALUE_BYTES``) become this process's, so the
        client refuses what the deployment's services would.
        """
        limits.configure(settings.limits)
        pool = await create_pool(
            settings.database_url,
            min_size=1,
            max_size=5,
            command_timeout=settings.database_timeout_seconds,
        )
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
        return cls(
            pool,
            publisher,
            settings.topology,
            owns_resources=True,
            start_existing=settings.start_existing,
        )

    async def check_connections(self, timeout: float = READINESS_SECONDS) -> dict[str, str]:
        """Whether this client can reach what it needs now, each within ``timeout`` seconds:
        ``{"database": "ok" | <error>, "broker": "ok" | <error>}`` (a readiness check; the
        broker is connected again if it must be)."""

        async def database() -> None:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), timeout)

        checks = {"database": database(), "broker": self._publisher.check(timeout)}
        results = await asyncio.gather(*checks.values(), return_exceptions=True)
        return {
            name: "ok" if result is None else (repr(result) if str(result) == "" else str(result))
            for name, result in zip(checks, results, strict=True)
        }

    async def close(self) -> None:
        await self._outbox_cleaner.close()
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
        if_exists: ExistingInstancePolicy | None = None,
        version: str | None = None,
    ) -> str:
        """Start an orchestration; return its instance id (generated when not given).

        ``version`` is the app version it runs under (``context.version``), as Durable
        Functions' ``start_new(..., version=)``; without one, the orchestrator that records
        the start stamps its own ``DF_APP_VERSION`` (docs/guide/versioning.md).

        The instance exists (Pending) as soon as this returns. When ``instance_id`` is in use,
        ``if_exists`` decides (the client's ``start_existing`` when not given): ``ERROR``
        raises ``InstanceExistsError``; ``REPLACE_ENDED`` purges and replaces an instance that
        has ended, in the same transaction (Durable Functions' default), and raises
        ``InstanceExistsError`` for one that has not; ``USE_EXISTING`` keeps the existing
        instance, whatever its state, and starts nothing (``start`` says which happened),
        unless it runs another orchestrator (``InstanceExistsError``: it is not this start).

        Raises ``ValueRefusedError`` (a ``ValueError``) for an id, name or input that could
        not be stored or sent, before anything is written; ``StartOutcomeUnknownError`` when
        the database went away while the start was being written and did not come back in
        time to tell whether it was.
        """
        started = await self.start(
            orchestrator_name,
            instance_id,
            input,
            correlation_id=correlation_id,
            if_exists=if_exists,
            version=version,
        )
        return started.instance_id

    async def start(
        self,
        orchestrator_name: str,
        instance_id: str | None = None,
        input: Any = None,
        *,
        correlation_id: str | None = None,
        if_exists: ExistingInstancePolicy | None = None,
        version: str | None = None,
        traceparent: str | None = None,
    ) -> Started:
        """``start_new``, answering also whether this call created the instance;
        ``traceparent`` (W3C) puts the instance's work in the caller's trace (ADR 32)."""
        policy = ExistingInstancePolicy(if_exists or self.start_existing)
        instance, outgoing = new_start(
            self._topology,
            orchestrator_name,
            instance_id,
            input,
            correlation_id=correlation_id,
            version=version,
            traceparent=traceparent,
        )
        instance_id = instance.instance_id
        try:
            return await self._write_start(instance, outgoing, policy)
        except (asyncpg.ConnectionDoesNotExistError, ConnectionResetError) as error:
            # Lost while the statement was on its way or running: it may have committed.
            # Only an answer that is true either way may go back to the caller.
            created = await settle_start(self._pool, instance)
            if created is None:
                raise StartOutcomeUnknownError(instance_id) from error
            if created:
                return Started(instance_id, created=True)
            raise

    async def _write_start(
        self,
        instance: NewInstance,
        outgoing: OutgoingMessage,
        policy: ExistingInstancePolicy,
        *,
        again: bool = True,
    ) -> Started:
        instance_id = instance.instance_id
        # A new id (the common case) goes with the other starts of the moment (StartBatcher).
        if await self._starts.start(instance, outgoing) is not None:
            return Started(instance_id, created=True)
        record = None
        if policy is ExistingInstancePolicy.REPLACE_ENDED:
            async with self._pool.acquire() as connection, connection.transaction():
                await purge_instances_txn(connection, [instance_id])
                record = await insert_start(connection, Start(instance, outgoing))
        if record is None:
            existing = await fetch_instance(self._pool, instance_id)
            keeping = policy is ExistingInstancePolicy.USE_EXISTING
            if keeping and existing is None and again:
                # Purged since it was found taken: it can be started now.
                return await self._write_start(instance, outgoing, policy, again=False)
            if keeping and existing is not None and existing.name == instance.name:
                return Started(instance_id, created=False, kept=existing)
            status = existing.runtime_status if existing else OrchestrationStatus.PENDING
            # Another orchestrator's instance is not this start's to keep: say whose it is.
            other = existing.name if keeping and existing is not None else None
            raise InstanceExistsError(instance_id, status, other)
        await publish_committed(self._outbox_cleaner, self._publisher, [record])
        return Started(instance_id, created=True)

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

    async def wait_for_completion_or_create_check_status_response(
        self,
        instance_id: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        retry_interval: float = 1.0,
        access_key: str | None = None,
        return_internal_server_error_on_failure: bool = False,
        give_up: Callable[[], Awaitable[bool]] | None = None,
    ) -> CheckStatusResponse:
        """Wait up to ``timeout`` seconds for the instance to end, checking every
        ``retry_interval`` seconds, as azure-functions-durable's method of this name does.

        Returns the outcome (200: the output of a Completed instance, the status of a Failed
        or Terminated one) or, if it is still running, the check-status payload (202) with
        links under ``base_url`` (the HTTP API's public URL) carrying ``access_key``. The
        answer is a plain value: no web framework is needed to build or read it. Raises
        ``ValueError`` when ``retry_interval`` exceeds ``timeout`` and
        ``InstanceNotFoundError`` when there is no such instance. ``give_up``, asked while
        waiting, ends the wait early with the check-status payload (a web framework passes
        "the caller has gone or the service is stopping").
        """
        return await wait_for_completion_or_check_status(
            self.get_status,
            instance_id,
            base_url.rstrip("/"),
            timeout=timeout,
            retry_interval=retry_interval,
            access_key=access_key,
            return_internal_server_error_on_failure=return_internal_server_error_on_failure,
            give_up=give_up,
        )

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
        check_short_string(event_name, "the event name")
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

    async def rewind(self, instance_id: str, reason: Any = None) -> None:
        """Revive a Failed instance: it goes back to before the failures that ended it, runs
        the failed activities (and sub-orchestrations) again and keeps the completed ones'
        results. Raises ``InstanceNotFoundError`` or ``InstanceNotFailedError``."""
        status = await self.get_status(instance_id)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        if status.runtime_status is not OrchestrationStatus.FAILED:
            raise InstanceNotFailedError(instance_id, status.runtime_status)
        reason = to_json_value(reason, "the rewind reason")
        await self._publish(status, ExecutionRewound(timestamp=datetime.now(UTC), reason=reason))

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with the same input; return the id.

        With ``new_instance_id`` (the default) it runs under a new id and the old instance is
        left as it is; otherwise under the same id, replacing it, which needs it to have ended
        (``InstanceExistsError`` if not). Raises ``InstanceNotFoundError``.
        """
        status = await self.get_status(instance_id)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        return await self.start_new(
            status.name,
            None if new_instance_id else instance_id,
            status.input,
            if_exists=ExistingInstancePolicy.REPLACE_ENDED,
        )

    async def _send(
        self, instance_id: str, event: InboundEvent, *, message_id: uuid.UUID | None = None
    ) -> None:
        status = await self.get_status(instance_id)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        if status.runtime_status.is_terminal:
            raise InstanceEndedError(instance_id, status.runtime_status)
        await self._publish(status, event, message_id=message_id)

    async def _publish(
        self, status: InstanceStatus, event: InboundEvent, *, message_id: uuid.UUID | None = None
    ) -> None:
        instance_id = status.instance_id
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
        # A second copy of the message, should a refused one have reached the queue after
        # all, is dropped by the orchestrator: it has the same message id.
        await self._publisher.publish_patiently(
            OutgoingMessage.of(message, exchange, routing_key), within=SEND_PATIENCE_SECONDS
        )
