"""The proposal-approval workflow's messages: what submitters, approvers and authors exchange.

Every message has the shape of the other messages on the broker, ``{"envelope": …, "body": …}``
(``contracts.envelope``), with ``envelope.type`` naming the body and ``envelope.instance_id``
equal to the proposal id, which is also the id of the orchestration instance that runs it.

- ``ProposalSubmittedMessage``: a submitting system → the submissions queue. Starts the approval;
  a re-sent submission (same proposal id) starts nothing new.
- ``ApprovalRequestMessage``: the workflow → the approval-requests exchange, routed by assignee.
  Asks a person to decide, or reminds them (``reminder``), before ``deadline``.
- ``ApprovalResponseMessage``: an approver → the approval-responses queue. Only the answer of the
  person currently assigned decides; others are recorded and change nothing.
- ``ProposalOutcomeMessage``: the workflow → the proposal-outcomes exchange, routed by author.

``ApprovalProgress`` is the orchestration's custom status and ``ApprovalRecord`` its output, as
clients read them from the status API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.envelope import Envelope
from contracts.limits import SHORT_STRING, STORABLE_TEXT
from contracts.messages import EnvelopedMessage

APPROVAL_ORCHESTRATOR = "proposal_approval"
"""The orchestrator a ``ProposalSubmitted`` starts (its default name; deployments may rename)."""

RESPONSE_EVENT = "ApprovalResponse"
"""The external event an ``ApprovalResponse`` becomes; its data is the response body."""

_PROPOSAL_ID_PATTERN = r"^[^\s/\\#?@\x00-\x1f][^\s/\\#?\x00-\x1f]*$"
ProposalId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=_PROPOSAL_ID_PATTERN), SHORT_STRING
]
"""A proposal's id, also its orchestration instance id: at most 200 characters and 255 bytes
in UTF-8, no whitespace or control characters, none of ``/ \\ # ?`` (instance ids go in
URLs), not starting with ``@``."""

PersonId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s*#\x00-\x1f]+$"),
    SHORT_STRING,
]
"""A person's id (user name or e-mail address); routing key of the messages sent to them, so
at most 255 bytes in UTF-8, no whitespace, no control characters and no AMQP wildcards."""

Decision = Literal["approve", "reject"]
Outcome = Literal["approved", "rejected", "expired", "auto_rejected"]
"""``approved``/``rejected``: decided by the assignee. ``expired``/``auto_rejected``: nobody
answered at any level in time (which of the two is the deployment's choice)."""


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProposalSubmitted(_Body):
    """A project design proposal submitted for approval.

    Attributes:
        proposal_id: unique per proposal; a proposal is decided once (resubmit under a new id).
        author: who submitted it, and who hears the outcome.
        amount: the proposal's size in ``currency``; it decides which level reviews it first.
        department: picks the department's approvers when the hierarchy names them.
    """

    proposal_id: ProposalId
    author: PersonId
    title: Annotated[str, StringConstraints(min_length=1, max_length=500), STORABLE_TEXT]
    description: Annotated[str, StringConstraints(max_length=10_000), STORABLE_TEXT] = ""
    department: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), SHORT_STRING] | None
    ) = None
    amount: float = Field(ge=0, allow_inf_nan=False)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    submitted_at: AwareDatetime


class ApprovalRequest(_Body):
    """Asks ``assignee`` to approve or reject ``proposal`` before ``deadline``.

    Attributes:
        stage: the hierarchy level asked, e.g. ``manager`` or ``head_of_department``.
        level: that level's position in this proposal's chain (0: the first approver).
        reminder: True when this repeats an earlier request that got no answer.
        reassigned_from: the previous level's assignee, when the request was escalated to here.
    """

    proposal: ProposalSubmitted
    assignee: PersonId
    stage: str
    level: int = Field(ge=0)
    reminder: bool = False
    reassigned_from: PersonId | None = None
    requested_at: AwareDatetime
    deadline: AwareDatetime


class ApprovalResponse(_Body):
    """An approver's answer. It decides only when ``approver`` is the current assignee."""

    proposal_id: ProposalId
    approver: PersonId
    decision: Decision
    comment: Annotated[str, StringConstraints(max_length=4000), STORABLE_TEXT] = ""
    responded_at: AwareDatetime


class Escalation(_Body):
    """A deadline that passed without an answer, and what the workflow did about it.

    ``reminder``: asked ``assignee`` (the same person) again. ``reassignment``: handed the
    proposal from ``previous_assignee`` to ``assignee`` at the next level up.
    """

    kind: Literal["reminder", "reassignment"]
    at: datetime
    missed_deadline: datetime
    previous_assignee: PersonId
    assignee: PersonId
    stage: str


class ProposalOutcome(_Body):
    """How a proposal ended, published for its author.

    Attributes:
        decided_by: the approver who decided, or None when nobody answered in time.
        stage: the hierarchy level that decided (or the last one asked).
        escalations: every reminder and reassignment, in order, with timestamps.
        started_at: when the workflow took up the proposal.
    """

    proposal_id: ProposalId
    author: PersonId
    title: str
    outcome: Outcome
    decided_by: PersonId | None = None
    stage: str | None = None
    comment: str = ""
    escalations: list[Escalation] = []
    submitted_at: datetime
    started_at: datetime
    decided_at: datetime


class IgnoredResponse(_Body):
    """An answer that did not count: from someone other than the assignee, or malformed."""

    received_at: datetime
    approver: str | None
    decision: str | None
    reason: str


class ApprovalRecord(ProposalOutcome):
    """The orchestration's output: the outcome, plus the answers that were ignored."""

    ignored_responses: list[IgnoredResponse] = []


class ApprovalProgress(_Body):
    """The orchestration's custom status: where the proposal is, at every step."""

    phase: Literal["choosing_approver", "awaiting_response", "decided"]
    stage: str | None = None
    assignee: PersonId | None = None
    deadline: datetime | None = None
    reminder: bool = False
    escalations: int = 0
    outcome: Outcome | None = None


# --- messages --------------------------------------------------------------------------------


class _ApprovalMessage(EnvelopedMessage):
    """An envelope whose ``type`` names the body and whose ``instance_id`` is the proposal id."""

    TYPE: ClassVar[str]

    @property
    def proposal_id(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _envelope_matches_body(self) -> Self:
        if self.envelope.type != self.TYPE:
            raise ValueError(f"envelope type {self.envelope.type!r} is not {self.TYPE!r}")
        if self.envelope.instance_id != self.proposal_id:
            raise ValueError(
                f"envelope instance_id {self.envelope.instance_id!r} is not the proposal id "
                f"{self.proposal_id!r}"
            )
        return self


class ProposalSubmittedMessage(_ApprovalMessage):
    TYPE: ClassVar[str] = "ProposalSubmitted"
    body: ProposalSubmitted

    @property
    def proposal_id(self) -> str:
        return self.body.proposal_id


class ApprovalRequestMessage(_ApprovalMessage):
    TYPE: ClassVar[str] = "ApprovalRequest"
    body: ApprovalRequest

    @property
    def proposal_id(self) -> str:
        return self.body.proposal.proposal_id


class ApprovalResponseMessage(_ApprovalMessage):
    TYPE: ClassVar[str] = "ApprovalResponse"
    body: ApprovalResponse

    @property
    def proposal_id(self) -> str:
        return self.body.proposal_id


class ProposalOutcomeMessage(_ApprovalMessage):
    TYPE: ClassVar[str] = "ProposalOutcome"
    body: ProposalOutcome

    @property
    def proposal_id(self) -> str:
        return self.body.proposal_id


def approval_envelope(
    message_type: str,
    proposal_id: str,
    *,
    message_id: uuid.UUID,
    sent_at: datetime,
    correlation_id: str | None = None,
) -> Envelope:
    """The envelope of an approval message; the correlation id defaults to the proposal id."""
    return Envelope(
        message_id=message_id,
        instance_id=proposal_id,
        correlation_id=correlation_id or proposal_id,
        type=message_type,
        sent_at=sent_at,
    )
