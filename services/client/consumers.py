"""The approval workflow's broker entry points: client functions triggered by queue messages.

- The submissions queue: a ``ProposalSubmitted`` starts the approval orchestration with the
  proposal id as its instance id. A re-sent submission finds the instance already there
  (``InstanceExistsError``): it is a duplicate, acknowledged and logged, and starts nothing.
- The approval-responses queue: an ``ApprovalResponse`` whose publisher is the approver it
  names (RabbitMQ's validated ``user_id``, ``services.client.approvers``) becomes the
  instance's ``ApprovalResponse`` external event, raised with a message id derived from the
  carrying message's, so a redelivery is recorded once. A response for a proposal that has ended is
  acknowledged and logged: answering late is normal (the proposal was decided or escalated
  past that person) and there is nothing left to do. A response for an unknown proposal, or for
  an instance that is not a proposal approval, goes to the dead-letter queue: a wrong id
  needs a person to look at it. So does a response whose publisher is not the approver it
  names, nor a gateway: it changes nothing, and the reason names both.

Bad JSON and schema violations go to the queue's dead-letter queue with the reason in the
``x-dead-letter-reason`` header, without stopping the consumer. A delivery is acknowledged
only once its effect is durable (the instance row and start message committed; the event's
publish confirmed); after a database or broker failure it is returned to the queue, and the
queue's delivery limit dead-letters a message that keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pydantic import ValidationError

from contracts import Topology, deterministic_message_id
from contracts.approval import (
    APPROVAL_ORCHESTRATOR,
    RESPONSE_EVENT,
    ApprovalResponseMessage,
    ProposalSubmittedMessage,
)
from durable.broker import Publisher, PublishFailedError, dead_letter, declare
from durable.client.client import (
    DurableClient,
    ExistingInstancePolicy,
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFoundError,
)
from services.client.approvers import ApproverIdentities
from services.common.consuming import ChannelWatch, consuming_channel

log = structlog.get_logger(__name__)

_RETRY_BACKOFF_SECONDS = 0.5

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class ApprovalConsumers:
    """Consumes the submissions and approval-responses queues, one channel each.

    Run it under a ``ConnectionSupervisor`` (``attach`` on every new connection, ``detach`` when
    it is lost), as the other services run their consumers (ADR 7).
    """

    def __init__(
        self,
        client: DurableClient,
        publisher: Publisher,
        topology: Topology,
        *,
        identities: ApproverIdentities,
        orchestrator: str = APPROVAL_ORCHESTRATOR,
        prefetch: int = 32,
    ) -> None:
        self._client = client
        self._publisher = publisher
        self._topology = topology
        self._identities = identities
        self._orchestrator = orchestrator
        self._prefetch = prefetch
        self._channels: list[AbstractChannel] = []
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def attach(
        self, connection: AbstractConnection, watch: ChannelWatch | None = None
    ) -> None:
        """Declare the approval topology (idempotent) and consume on a (new) connection;
        ``watch`` each consuming channel (``ConnectionSupervisor.watch``)."""
        channel = await connection.channel()
        exchanges, queues, bindings = self._topology.approval_declarations()
        for spec in exchanges:
            await channel.declare_exchange(spec.name, spec.type, durable=True)
        await declare(channel, self._topology, queues, bindings)
        await channel.close()
        handlers: list[tuple[str, Handler]] = [
            (self._topology.proposal_submissions_queue, self._on_submission),
            (self._topology.approval_responses_queue, self._on_response),
        ]
        for queue_name, handler in handlers:
            channel = await consuming_channel(connection, self._prefetch, watch)
            queue = await channel.get_queue(queue_name, ensure=False)
            tag = await queue.consume(self._tracked(handler))
            self._channels.append(channel)
            self._consumers.append((queue, tag))
        log.info("approval_consumers.attached", orchestrator=self._orchestrator)

    def detach(self) -> None:
        """The connection is gone: deliveries in progress can no longer be settled, and the
        broker redelivers them (a duplicate start is refused, a duplicate event dropped)."""
        self._channels.clear()
        self._consumers.clear()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, let those in progress finish; the rest stay in the queues."""
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()

    def _tracked(self, handler: Handler) -> Handler:
        async def run(delivery: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            try:
                await handler(delivery)
            except Exception as error:  # never let one message stop the consumer
                await self._retry_later(delivery, error)

        return run

    # --- submissions -------------------------------------------------------------------------

    async def _on_submission(self, delivery: AbstractIncomingMessage) -> None:
        queue_name = self._topology.proposal_submissions_queue
        try:
            message = ProposalSubmittedMessage.model_validate_json(delivery.body)
        except ValidationError as error:
            await self._dead_letter(queue_name, delivery, f"invalid ProposalSubmitted: {error}")
            return
        proposal = message.body
        with structlog.contextvars.bound_contextvars(
            proposal_id=proposal.proposal_id, message_id=str(message.envelope.message_id)
        ):
            try:
                await self._client.start_new(
                    self._orchestrator,
                    proposal.proposal_id,
                    proposal.model_dump(mode="json"),
                    correlation_id=message.envelope.correlation_id,
                    # Whatever DF_START_EXISTING says: a re-sent submission starts nothing.
                    if_exists=ExistingInstancePolicy.ERROR,
                )
            except InstanceExistsError as error:
                log.info("proposal.duplicate_submission", status=error.status.value)
            else:
                log.info("proposal.approval_started")
            await _settle(delivery.ack())

    # --- responses ---------------------------------------------------------------------------

    async def _on_response(self, delivery: AbstractIncomingMessage) -> None:
        queue_name = self._topology.approval_responses_queue
        try:
            message = ApprovalResponseMessage.model_validate_json(delivery.body)
        except ValidationError as error:
            await self._dead_letter(queue_name, delivery, f"invalid ApprovalResponse: {error}")
            return
        response = message.body
        with structlog.contextvars.bound_contextvars(
            proposal_id=response.proposal_id,
            message_id=str(message.envelope.message_id),
            approver=response.approver,
        ):
            refusal = self._identities.refusal(response.approver, delivery.user_id)
            if refusal is not None:
                log.warning("approval.response_unverified", user_id=delivery.user_id)
                await self._dead_letter(queue_name, delivery, refusal)
                return
            status = await self._client.get_status(response.proposal_id)
            if status is None:
                reason = f"no proposal {response.proposal_id!r}: no instance has this id"
                await self._dead_letter(queue_name, delivery, reason)
                return
            if status.name != self._orchestrator:
                reason = (
                    f"instance {response.proposal_id!r} runs {status.name!r}, "
                    f"not {self._orchestrator!r}"
                )
                await self._dead_letter(queue_name, delivery, reason)
                return
            event_id = deterministic_message_id(
                response.proposal_id, RESPONSE_EVENT, message.envelope.message_id
            )
            try:
                await self._client.raise_event(
                    response.proposal_id,
                    RESPONSE_EVENT,
                    response.model_dump(mode="json"),
                    message_id=event_id,
                )
            except InstanceNotFoundError:  # purged since the status read
                reason = f"no proposal {response.proposal_id!r}: no instance has this id"
                await self._dead_letter(queue_name, delivery, reason)
                return
            except InstanceEndedError as error:
                log.info("approval.response_after_end", status=error.status.value)
            else:
                log.info("approval.response_raised", decision=response.decision)
            await _settle(delivery.ack())

    # --- settling ----------------------------------------------------------------------------

    async def _dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, reason: str
    ) -> None:
        try:
            await dead_letter(self._publisher, self._topology, queue_name, delivery, reason)
        except PublishFailedError as error:
            await self._retry_later(delivery, error)

    async def _retry_later(self, delivery: AbstractIncomingMessage, error: BaseException) -> None:
        """Return the message to its queue after a pause (the delivery limit bounds retries)."""
        log.warning("approval.delivery_failed", error=repr(error), redelivered=delivery.redelivered)
        await asyncio.sleep(_RETRY_BACKOFF_SECONDS)
        await _settle(delivery.nack(requeue=True))


async def _settle(settlement: Awaitable[None]) -> None:
    # After a reconnect the delivery tag is void and the broker redelivers the message anyway;
    # a duplicate start is refused and a duplicate event dropped, so nothing else is needed.
    try:
        await settlement
    except Exception as error:
        log.debug("delivery.settle_failed", error=repr(error))
