"""Publishing the approval workflow's outbound messages, from its activities.

Activities may do I/O; these two publish to the topic exchanges approver- and author-facing
apps subscribe to. One connection per activity process, opened on the first publish and reused;
a publish that fails (e.g. the broker restarted) is tried once more on a new connection, and
then fails the activity, which the orchestrator retries later. The channel waits for the
broker's confirm of every message. Messages are persistent but not ``mandatory``: an
exchange nobody has bound a queue to for that person is a deployment's choice, not a failure
of the workflow.

Activities run at least once, so a message can be published twice; its ``message_id`` is
derived from the task's idempotency key and is the same both times, for consumers to drop the
duplicate.
"""

from __future__ import annotations

import asyncio

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection, AbstractExchange

from contracts.topology import Topology
from durable.settings import CommonSettings
from workflows.approval.messages import ApprovalRequestMessage, ProposalOutcomeMessage
from workflows.approval.topology import ApprovalTopology

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 15.0


class ApprovalPublisher:
    """Publishes approval requests (routed by assignee) and outcomes (routed by author)."""

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._amqp_url = amqp_url
        self._topology = ApprovalTopology(topology)
        self._connection: AbstractConnection | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._opening = asyncio.Lock()

    async def publish_request(self, message: ApprovalRequestMessage) -> None:
        exchange = self._topology.approval_requests_exchange
        await self._publish(exchange, message.body.assignee, message)

    async def publish_outcome(self, message: ProposalOutcomeMessage) -> None:
        exchange = self._topology.proposal_outcomes_exchange
        await self._publish(exchange, message.body.author, message)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._exchanges = {}
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def _publish(
        self,
        exchange_name: str,
        routing_key: str,
        message: ApprovalRequestMessage | ProposalOutcomeMessage,
    ) -> None:
        envelope = message.envelope
        amqp_message = aio_pika.Message(
            message.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.message_id),
            correlation_id=envelope.correlation_id,
            type=envelope.type,
        )
        for attempt in (1, 2):
            try:
                exchange = (await self._open())[exchange_name]
                await exchange.publish(amqp_message, routing_key, timeout=PUBLISH_TIMEOUT_SECONDS)
                return
            except Exception as error:
                await self.close()
                if attempt == 2:
                    raise
                log.info("approval.publish_retry", error=repr(error))

    async def _open(self) -> dict[str, AbstractExchange]:
        async with self._opening:
            if self._connection is None or self._connection.is_closed:
                connection = await aio_pika.connect(
                    self._amqp_url,
                    client_properties={"connection_name": "approval.publish"},
                    timeout=30,
                )
                try:
                    channel = await connection.channel(publisher_confirms=True)
                    self._exchanges = {
                        spec.name: await channel.declare_exchange(
                            spec.name, spec.type, durable=True
                        )
                        for spec in self._topology.outbound_exchanges()
                    }
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
            return self._exchanges


_publisher: ApprovalPublisher | None = None


def approval_publisher() -> ApprovalPublisher:
    """This process's publisher, created on first use from the ``DF_*`` settings."""
    global _publisher
    if _publisher is None:
        settings = CommonSettings()
        _publisher = ApprovalPublisher(settings.amqp_url, settings.topology)
    return _publisher
