"""The approval workflow's broker entry points, which the client service consumes.

- The submissions queue: a ``ProposalSubmitted`` starts the approval orchestration with the
  proposal id as its instance id. A re-sent submission finds the instance already there: it is
  logged as ``proposal.duplicate_submission`` and starts nothing.
- The approval-responses queue: an ``ApprovalResponse`` whose publisher is the approver it
  names (RabbitMQ's validated ``user_id``, or a gateway user; ADR 20) becomes the instance's
  ``ApprovalResponse`` external event. A response for a proposal that has ended is logged
  (``approval.response_after_end``): answering late is normal. A response for an unknown
  proposal, or for an instance that is not a proposal approval, is dead-lettered. So is one
  whose publisher is not the approver it names, nor a gateway (``approval.response_unverified``).

Settings (read when the client service starts, besides the common ``DF_*`` ones):

``DF_APPROVAL_CONSUMERS``
    ``false`` declares no entry points (deployments that do not run the workflow).
``DF_APPROVAL_ORCHESTRATOR``
    The orchestrator a ``ProposalSubmitted`` starts (``proposal_approval``).
``DF_APPROVAL_BROKER_USERS``
    JSON object, person id -> broker user, for approvers whose broker user is not named by
    their person id; a mapped person answers only as the mapped user.
``DF_APPROVAL_GATEWAY_USERS``
    Comma-separated broker users that may answer for any approver (none by default).

Who publishes here, for ``durable-ops broker-definitions`` (ADR 36): a submitting system as
the deployment's ``submitter`` user, to the submissions exchange; every approver of the
hierarchy (``DF_APPROVAL_HIERARCHY``, read only then) as their broker user, and the gateways,
to the responses exchange.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable.entry_points import EntryPoint, EntryPoints, LogEvents, RaiseEvent, StartOrchestration
from durable.senders import SenderIdentities, Senders
from workflows.approval.config import ApprovalSettings
from workflows.approval.messages import (
    APPROVAL_ORCHESTRATOR,
    RESPONSE_EVENT,
    ApprovalResponseMessage,
    ProposalSubmittedMessage,
)
from workflows.approval.topology import OUTCOMES, REQUESTS, RESPONSES, SUBMISSIONS

GATEWAY_SETTING = "DF_APPROVAL_GATEWAY_USERS"
BROKER_USERS_SETTING = "DF_APPROVAL_BROKER_USERS"
SUBMITTER = "submitter"
"""The deployment's broker user role that publishes submissions (``<namespace>-submitter``)."""


class ApprovalEntrySettings(BaseSettings):
    """The ``DF_APPROVAL_*`` settings of the entry points (see the module's docstring)."""

    model_config = SettingsConfigDict(env_prefix="DF_", extra="ignore")

    approval_consumers: bool = True
    approval_orchestrator: str = APPROVAL_ORCHESTRATOR
    approval_broker_users: dict[str, str] = Field(default_factory=dict)
    approval_gateway_users: str = ""


def approver_identities(settings: ApprovalEntrySettings) -> SenderIdentities:
    """Which broker user answers for which approver.

    Raises ``SenderIdentitiesError`` for a mapping that gives two people one user.
    """
    return SenderIdentities(
        dict(settings.approval_broker_users),
        SenderIdentities.gateway_list(settings.approval_gateway_users),
        role="approver",
        broker_users_setting=BROKER_USERS_SETTING,
        gateways_setting=GATEWAY_SETTING,
    )


def entry_points() -> EntryPoints:
    """The submissions and responses queues, and the exchanges the workflow publishes to,
    from the settings as they are now."""
    settings = ApprovalEntrySettings()
    if not settings.approval_consumers:
        return EntryPoints()
    orchestrator = settings.approval_orchestrator
    submissions: EntryPoint[ProposalSubmittedMessage] = EntryPoint(
        queue=SUBMISSIONS,
        message=ProposalSubmittedMessage,
        name="ProposalSubmitted",
        action=StartOrchestration(
            orchestrator,
            instance_id=lambda message: message.body.proposal_id,
            input=lambda message: message.body.model_dump(mode="json"),
        ),
        log_fields=lambda message: {"proposal_id": message.body.proposal_id},
        logs=LogEvents(
            started="proposal.approval_started", duplicate="proposal.duplicate_submission"
        ),
        publisher=SUBMITTER,
    )
    responses: EntryPoint[ApprovalResponseMessage] = EntryPoint(
        queue=RESPONSES,
        message=ApprovalResponseMessage,
        name="ApprovalResponse",
        action=RaiseEvent(
            RESPONSE_EVENT,
            instance_id=lambda message: message.body.proposal_id,
            data=lambda message: message.body.model_dump(mode="json"),
            orchestrator=orchestrator,
            instance_noun="proposal",
        ),
        senders=Senders(
            lambda message: message.body.approver,
            approver_identities(settings),
            parties=hierarchy_approvers,
        ),
        log_fields=_response_fields,
        logs=LogEvents(
            raised="approval.response_raised",
            after_end="approval.response_after_end",
            sender_refused="approval.response_unverified",
        ),
    )
    return EntryPoints([submissions, responses], [REQUESTS, OUTCOMES])


def hierarchy_approvers() -> list[str]:
    """Everyone the configured hierarchy may ask (read now: the broker definitions are made
    for the hierarchy as it is; a new approver needs them made again)."""
    return ApprovalSettings().hierarchy().approvers()


def _response_fields(message: ApprovalResponseMessage) -> dict[str, Any]:
    response = message.body
    return {
        "proposal_id": response.proposal_id,
        "approver": response.approver,
        "decision": response.decision,
    }
