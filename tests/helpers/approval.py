"""The approval workflow from the outside, for end-to-end tests: what submitters publish, what
approvers and authors receive.

``ApprovalBus`` publishes to the real submissions and responses queues through their own
exchanges (confirmed, mandatory; the default exchange when asked, the path publishers used
before those exchanges existed) and collects what the workflow publishes on the real requests
and outcomes exchanges through a temporary queue bound to both with ``#``.

Approvers answer as themselves: each person of the test deployment has a broker user of the
session (``APPROVER_USERS``; ``tests.conftest`` creates them), and ``ApprovalBus.respond``
publishes through that user's own connection with ``user_id`` set, so every answer passes the
client service's real identity check. The manager and the head of department are mapped to
broker users named otherwise (``DF_APPROVAL_BROKER_USERS``); the intern answers as the user
named by their person id; ``GATEWAY`` may answer for anyone. The bus's own connection (guest)
is trusted for nobody. A deployment with broker users of its own (the least-privilege test's,
limited to publishing) gives the bus those users instead (``approval_bus(..., identities=…)``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import BaseModel

from contracts import Topology
from tests.helpers.broker_users import BrokerUser
from tests.helpers.waiting import assert_eventually
from workflows.approval.messages import (
    ApprovalRequest,
    ApprovalRequestMessage,
    ApprovalResponse,
    ApprovalResponseMessage,
    ProposalOutcome,
    ProposalOutcomeMessage,
    ProposalSubmitted,
    ProposalSubmittedMessage,
    approval_envelope,
)
from workflows.approval.topology import ApprovalTopology

RESPONSE_SECONDS = 2.0
REMINDER_SECONDS = 1.0
MANAGER, HEAD = "mia.manager", "hugo.head"
_SESSION = uuid.uuid4().hex[:8]
INTERN = f"eve.intern.{_SESSION}"
"""Not an approver of the hierarchy; answers as the broker user named by this person id."""
BROKER_USERS = {MANAGER: f"df-test-{_SESSION}-mia", HEAD: f"df-test-{_SESSION}-hugo"}
"""``DF_APPROVAL_BROKER_USERS`` of the test deployment."""
GATEWAY = f"df-test-{_SESSION}-gateway"
"""``DF_APPROVAL_GATEWAY_USERS`` of the test deployment: answers for any approver."""
APPROVER_USERS = {name: BrokerUser.new(name) for name in (*BROKER_USERS.values(), INTERN, GATEWAY)}
"""The session's broker users, by name."""
MANAGER_LIMIT = 10_000
HIERARCHY = {
    "levels": [
        {"stage": "manager", "approver": MANAGER, "max_amount": MANAGER_LIMIT},
        {"stage": "head_of_department", "approver": HEAD},
    ]
}


def approval_env() -> dict[str, str]:
    """What the test deployment runs with: short deadlines, two levels, auto-rejection."""
    return {
        "DF_APPROVAL_HIERARCHY": json.dumps(HIERARCHY),
        "DF_APPROVAL_RESPONSE_SECONDS": str(RESPONSE_SECONDS),
        "DF_APPROVAL_REMINDER_SECONDS": str(REMINDER_SECONDS),
        "DF_APPROVAL_REMINDERS": "1",
        "DF_APPROVAL_ON_EXPIRY": "auto_rejected",
        "DF_APPROVAL_BROKER_USERS": json.dumps(BROKER_USERS),
        "DF_APPROVAL_GATEWAY_USERS": GATEWAY,
    }


def broker_user_of(person: str) -> str:
    """The broker user the test deployment takes ``person``'s answers from."""
    return BROKER_USERS.get(person, person)


def proposal(proposal_id: str, amount: float = 800, author: str = "alice") -> ProposalSubmitted:
    return ProposalSubmitted(
        proposal_id=proposal_id,
        author=author,
        title=f"Design proposal {proposal_id}",
        amount=amount,
        submitted_at=datetime.now(UTC),
    )


def submission(body: ProposalSubmitted) -> ProposalSubmittedMessage:
    envelope = approval_envelope(
        "ProposalSubmitted", body.proposal_id, message_id=uuid.uuid4(), sent_at=datetime.now(UTC)
    )
    return ProposalSubmittedMessage(envelope=envelope, body=body)


def response(
    proposal_id: str, approver: str, decision: str = "approve", comment: str = ""
) -> ApprovalResponseMessage:
    now = datetime.now(UTC)
    body = ApprovalResponse(
        proposal_id=proposal_id,
        approver=approver,
        decision=decision,  # type: ignore[arg-type]
        comment=comment,
        responded_at=now,
    )
    envelope = approval_envelope(
        "ApprovalResponse", proposal_id, message_id=uuid.uuid4(), sent_at=now
    )
    return ApprovalResponseMessage(envelope=envelope, body=body)


@dataclass(frozen=True)
class Identities:
    """The broker users a bus publishes as: ``users`` by name, the person -> user mapping of
    the deployment (``DF_APPROVAL_BROKER_USERS``), and the submitter's user (None: the bus's
    own connection)."""

    users: Mapping[str, BrokerUser]
    broker_users: Mapping[str, str]
    submitter: str | None = None

    def user_of(self, person: str) -> str:
        return self.broker_users.get(person, person)


SESSION_IDENTITIES = Identities(APPROVER_USERS, BROKER_USERS)
"""The session's approvers (full permissions), and submissions from the bus's own user."""


@dataclass(frozen=True)
class Received:
    """A message the workflow published, with the routing key it carried."""

    routing_key: str
    message: ApprovalRequestMessage | ProposalOutcomeMessage


class ApprovalBus:
    def __init__(
        self,
        channel: AbstractChannel,
        topology: Topology,
        amqp_url: str,
        identities: Identities = SESSION_IDENTITIES,
    ) -> None:
        self.channel = channel
        self.topology = topology
        self.names = ApprovalTopology(topology)
        self.identities = identities
        self.received: list[Received] = []
        self._amqp_url = amqp_url
        self._connections: dict[str, AbstractConnection] = {}
        self._channels: dict[str, AbstractChannel] = {}

    async def listen(self) -> None:
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.names.approval_requests_exchange, "#")
        await queue.bind(self.names.proposal_outcomes_exchange, "#")
        await queue.consume(self._collect, no_ack=True)

    async def _collect(self, delivery: AbstractIncomingMessage) -> None:
        model = ApprovalRequestMessage if delivery.type == "ApprovalRequest" else None
        model = model or ProposalOutcomeMessage
        self.received.append(
            Received(delivery.routing_key or "", model.model_validate_json(delivery.body))
        )

    # --- publishing ----------------------------------------------------------------------------

    async def publish(
        self,
        queue_name: str,
        body: bytes | BaseModel,
        *,
        as_user: str | None = None,
        user_id: str | None = None,
        via_default_exchange: bool = False,
    ) -> None:
        """To entry point queue ``queue_name`` through its own exchange (the queue's name,
        routing key too), confirmed; unroutable raises.

        ``as_user``: publish through a connection of that broker user (``identities.users``)
        instead of the bus's own (guest). ``user_id``: the message's ``user_id`` property,
        which RabbitMQ refuses unless it names the publishing user. ``via_default_exchange``:
        through the default exchange instead, as publishers did before the entry points'
        exchanges.
        """
        data = body if isinstance(body, bytes) else body.model_dump_json().encode()
        channel = self.channel if as_user is None else await self._channel_of(as_user)
        exchange = (
            channel.default_exchange
            if via_default_exchange
            else await channel.get_exchange(self.topology.entry_exchange(queue_name), ensure=False)
        )
        await exchange.publish(
            aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user_id),
            queue_name,
            mandatory=True,
        )

    async def _channel_of(self, user: str) -> AbstractChannel:
        if user not in self._channels:
            connection = await aio_pika.connect(self.identities.users[user].url(self._amqp_url))
            self._connections[user] = connection
            self._channels[user] = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        return self._channels[user]

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()

    async def submit(self, body: ProposalSubmitted | ProposalSubmittedMessage) -> None:
        message = body if isinstance(body, ProposalSubmittedMessage) else submission(body)
        submitter = self.identities.submitter
        await self.publish(self.names.proposal_submissions_queue, message, as_user=submitter)

    async def respond(
        self, proposal_id: str, approver: str, decision: str = "approve", comment: str = ""
    ) -> None:
        """``approver``'s answer, published as their own broker user (``user_id`` set)."""
        user = self.identities.user_of(approver)
        message = response(proposal_id, approver, decision, comment)
        await self.respond_as(user, message, user_id=user)

    async def respond_as(
        self,
        user: str | None,
        message: ApprovalResponseMessage,
        *,
        user_id: str | None,
        via_default_exchange: bool = False,
    ) -> None:
        """Publish ``message`` to the responses queue as broker user ``user`` (``None``: the
        bus's own user, ``own_user``) with this ``user_id`` property."""
        queue_name = self.names.approval_responses_queue
        await self.publish(
            queue_name,
            message,
            as_user=user,
            user_id=user_id,
            via_default_exchange=via_default_exchange,
        )

    @property
    def own_user(self) -> str:
        """The broker user of the bus's own connection (guest, in the tests)."""
        return unquote(urlsplit(self._amqp_url).username or "guest")

    # --- receiving -----------------------------------------------------------------------------

    def requests(self, proposal_id: str) -> list[tuple[str, ApprovalRequest]]:
        """(routing key, request) for every request published for ``proposal_id``, in order."""
        return [
            (r.routing_key, r.message.body)
            for r in self.received
            if isinstance(r.message, ApprovalRequestMessage)
            and r.message.body.proposal.proposal_id == proposal_id
        ]

    async def request(
        self, proposal_id: str, number: int, timeout: float = 20.0
    ) -> tuple[str, ApprovalRequest]:
        """The ``number``-th request (1-based) for ``proposal_id``, once it has arrived."""

        def arrived() -> tuple[str, ApprovalRequest]:
            requests = self.requests(proposal_id)
            assert len(requests) >= number, f"{len(requests)} requests for {proposal_id}"
            return requests[number - 1]

        return await assert_eventually(arrived, timeout=timeout)

    async def outcome(self, proposal_id: str, timeout: float = 20.0) -> tuple[str, ProposalOutcome]:
        def arrived() -> tuple[str, ProposalOutcome]:
            for received in self.received:
                message = received.message
                if isinstance(message, ProposalOutcomeMessage) and message.proposal_id == (
                    proposal_id
                ):
                    return received.routing_key, message.body
            raise AssertionError(f"no outcome for {proposal_id}")

        return await assert_eventually(arrived, timeout=timeout)


async def dead_letters(
    channel: AbstractChannel,
    queue_name: str,
    wanted: Callable[[AbstractIncomingMessage], bool],
    count: int,
    timeout: float = 10.0,
) -> list[AbstractIncomingMessage]:
    """Take messages from ``queue_name``.dlq until ``count`` of them are ``wanted``."""
    queue = await channel.get_queue(f"{queue_name}.dlq", ensure=False)
    found: list[AbstractIncomingMessage] = []

    async def collect(message: AbstractIncomingMessage) -> None:
        if wanted(message):
            found.append(message)

    def enough() -> bool:
        assert len(found) >= count, f"{len(found)} of {count} dead letters in {queue_name}.dlq"
        return True

    tag = await queue.consume(collect, no_ack=True)
    try:
        await assert_eventually(enough, timeout=timeout)
    finally:
        await queue.cancel(tag)
    return found


def header(message: AbstractIncomingMessage, name: str) -> str:
    value: Any = (message.headers or {}).get(name)
    assert value is not None, f"no {name} header in {message.headers}"
    return value.decode() if isinstance(value, bytes) else str(value)


@asynccontextmanager
async def approval_bus(
    amqp_url: str, topology: Topology, identities: Identities = SESSION_IDENTITIES
) -> AsyncIterator[ApprovalBus]:
    """A bus on its own connection, listening (the services must have declared the topology)."""
    connection: AbstractConnection = await aio_pika.connect(amqp_url)
    bus: ApprovalBus | None = None
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        bus = ApprovalBus(channel, topology, amqp_url, identities)
        await bus.listen()
        yield bus
    finally:
        if bus is not None:
            await bus.close()
        await connection.close()
