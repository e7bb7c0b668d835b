"""``make run``'s approval part: a proposal goes through escalation, driven over the broker.

Plays the three outside parties of the seed's workflow: a submitting system publishes a
``ProposalSubmitted`` to the submissions queue; approver apps listen on the approval-requests
exchange (nobody answers the manager, so a reminder and then a reassignment follow); the
escalated approver answers on the approval-responses queue; the author's app receives the
``ProposalOutcome`` from the outcomes exchange. Meanwhile the instance's custom status is shown
whenever it changes.

The head of department's answer is published as the demo's broker user (``DF_AMQP_URL``'s,
guest by default) with ``user_id`` set, which RabbitMQ validates; ``deploy.local`` makes that
user a gateway for local development, so it may answer for any approver (docs/approval.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts import OrchestrationStatus, Topology
from durable.broker import connect
from durable.broker_nodes import node_urls
from durable.client import DurableClient
from workflows.approval.messages import (
    ApprovalRequest,
    ApprovalRequestMessage,
    ApprovalResponse,
    ApprovalResponseMessage,
    ProposalOutcomeMessage,
    ProposalSubmitted,
    ProposalSubmittedMessage,
    approval_envelope,
)
from workflows.approval.topology import ApprovalTopology

DEMO_DEADLINES = {"DF_APPROVAL_RESPONSE_SECONDS": "3", "DF_APPROVAL_REMINDER_SECONDS": "2"}
"""Seconds rather than days, so the demo escalates while you watch (unless set already)."""


def broker_user(amqp_url: str) -> str:
    """The broker user a connection to ``amqp_url`` logs in as (aio-pika's default: guest);
    of a list of nodes, the first's (the nodes of one cluster share their users)."""
    return unquote(urlsplit(node_urls(amqp_url)[0]).username or "guest")


class ApprovalDemo:
    def __init__(
        self, client: DurableClient, topology: Topology, amqp_url: str, say: Callable[[str], None]
    ) -> None:
        self._client = client
        self._topology = ApprovalTopology(topology)
        self._amqp_url = amqp_url
        self._say = say
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._origin = time.monotonic()

    async def run(self, timeout: float = 45.0) -> dict[str, Any]:
        """Submit, escalate, approve; return the instance's output."""
        connection = await connect(self._amqp_url, "approval-demo")
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await self._listen(channel)
            proposal = ProposalSubmitted(
                proposal_id=f"proposal-{uuid.uuid4().hex[:8]}",
                author="alice",
                title="Move the build pipeline to the new CI",
                amount=4800,
                submitted_at=datetime.now(UTC),
            )
            await self._submit(channel, proposal)
            return await self._follow(channel, proposal.proposal_id, timeout)
        finally:
            await connection.close()

    async def _listen(self, channel: AbstractChannel) -> None:
        """An approver app and an author app: one temporary queue bound to both exchanges."""
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self._topology.approval_requests_exchange, "#")
        await queue.bind(self._topology.proposal_outcomes_exchange, "#")
        await queue.consume(self._inbox.put, no_ack=True)

    async def _submit(self, channel: AbstractChannel, proposal: ProposalSubmitted) -> None:
        message = ProposalSubmittedMessage(
            envelope=approval_envelope(
                "ProposalSubmitted",
                proposal.proposal_id,
                message_id=uuid.uuid4(),
                sent_at=datetime.now(UTC),
            ),
            body=proposal,
        )
        queue = self._topology.proposal_submissions_queue
        await _publish(channel, queue, message.model_dump_json().encode())
        self._origin = time.monotonic()
        self._say(
            f"  → ProposalSubmitted {proposal.proposal_id} by {proposal.author} "
            f"({proposal.amount:,.0f} {proposal.currency}) published to {queue}"
        )

    async def _follow(
        self, channel: AbstractChannel, proposal_id: str, timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        shown_status: Any = None
        answered = outcome_shown = False
        while time.monotonic() < deadline:
            status = await self._client.get_status(proposal_id)
            if status is not None and status.custom_status != shown_status:
                shown_status = status.custom_status
                self._show_status(shown_status)
            while not self._inbox.empty():
                delivery = self._inbox.get_nowait()
                if delivery.type == "ApprovalRequest":
                    request = ApprovalRequestMessage.model_validate_json(delivery.body).body
                    if request.proposal.proposal_id != proposal_id:
                        continue
                    self._show_request(delivery.routing_key or "", request)
                    if request.reassigned_from is not None and not answered:
                        await self._approve(channel, proposal_id, request.assignee)
                        answered = True
                elif delivery.type == "ProposalOutcome":
                    outcome = ProposalOutcomeMessage.model_validate_json(delivery.body).body
                    if outcome.proposal_id == proposal_id:
                        outcome_shown = True
                        self._line(
                            f"← ProposalOutcome for {delivery.routing_key}: {outcome.outcome} "
                            f"by {outcome.decided_by} ({outcome.stage}) after "
                            f"{len(outcome.escalations)} escalation(s)"
                        )
            if status is not None and status.runtime_status.is_terminal:
                if status.runtime_status is not OrchestrationStatus.COMPLETED:
                    raise RuntimeError(f"{proposal_id} ended {status.runtime_status.value}")
                if outcome_shown and isinstance(status.output, dict):
                    return status.output
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the approval of {proposal_id} did not finish within {timeout} s")

    async def _approve(self, channel: AbstractChannel, proposal_id: str, approver: str) -> None:
        now = datetime.now(UTC)
        message = ApprovalResponseMessage(
            envelope=approval_envelope(
                "ApprovalResponse", proposal_id, message_id=uuid.uuid4(), sent_at=now
            ),
            body=ApprovalResponse(
                proposal_id=proposal_id,
                approver=approver,
                decision="approve",
                comment="Looks good; go ahead.",
                responded_at=now,
            ),
        )
        queue = self._topology.approval_responses_queue
        user = broker_user(self._amqp_url)
        await _publish(channel, queue, message.model_dump_json().encode(), user_id=user)
        self._line(
            f"→ ApprovalResponse: {approver} approves, published to {queue} as broker user {user}"
        )

    def _show_status(self, custom_status: Any) -> None:
        if not isinstance(custom_status, dict):
            return
        phase = custom_status.get("phase")
        if phase == "awaiting_response":
            kind = "reminded" if custom_status.get("reminder") else "asked"
            self._line(
                f"status: {custom_status['stage']} {custom_status['assignee']} {kind}, "
                f"deadline {_clock(custom_status['deadline'])}, "
                f"escalations {custom_status['escalations']}"
            )
        elif phase == "decided":
            self._line(f"status: decided, {custom_status['outcome']}")
        else:
            self._line(f"status: {phase}")

    def _show_request(self, routing_key: str, request: ApprovalRequest) -> None:
        what = "reminder" if request.reminder else "request"
        if request.reassigned_from:
            what += f", reassigned from {request.reassigned_from}"
        self._line(
            f"← ApprovalRequest to {routing_key} ({request.stage}, {what}), "
            f"deadline {_clock(request.deadline.isoformat())}"
        )

    def _line(self, text: str) -> None:
        self._say(f"    +{time.monotonic() - self._origin:5.1f} s  {text}")


async def _publish(
    channel: AbstractChannel, queue_name: str, body: bytes, user_id: str | None = None
) -> None:
    await channel.default_exchange.publish(
        aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=user_id,
        ),
        queue_name,
        mandatory=True,
    )


def _clock(timestamp: str) -> str:
    return datetime.fromisoformat(timestamp).strftime("%H:%M:%S.%f")[:-5]
