"""The approval workflow's queues and exchanges, within the deployment's namespace.

In: submitting systems and approvers publish to two work queues (the workflow's broker entry
points, ``workflows.approval.entry_points``). Out: the workflow publishes to two topic
exchanges, routed by person, so approver- and author-facing apps bind what they want ("mia"
for one person's messages, "#" for all); nothing is lost by the workflow when nobody is bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.topology import BindingSpec, ExchangeSpec, QueueSpec, Topology
from durable.entry_points import Exchange

SUBMISSIONS = "approval.submissions"
"""ProposalSubmitted in: each starts an approval orchestration."""
RESPONSES = "approval.responses"
"""ApprovalResponse in: each becomes the instance's external event."""
REQUESTS = Exchange("approval.requests", "topic")
"""ApprovalRequest out, routing key: the assignee."""
OUTCOMES = Exchange("approval.outcomes", "topic")
"""ProposalOutcome out, routing key: the author."""


@dataclass(frozen=True)
class ApprovalTopology:
    """The approval workflow's full names in ``topology``'s namespace."""

    topology: Topology

    @property
    def proposal_submissions_queue(self) -> str:
        return self.topology.workflow_name(SUBMISSIONS)

    @property
    def approval_responses_queue(self) -> str:
        return self.topology.workflow_name(RESPONSES)

    @property
    def approval_requests_exchange(self) -> str:
        return self.topology.workflow_name(REQUESTS.name)

    @property
    def proposal_outcomes_exchange(self) -> str:
        return self.topology.workflow_name(OUTCOMES.name)

    def declarations(self) -> tuple[list[ExchangeSpec], list[QueueSpec], list[BindingSpec]]:
        """The two outbound exchanges, the two inbound queues with their dead-letter queues
        (what the client service declares for the entry points)."""
        exchanges = [
            ExchangeSpec(self.topology.workflow_name(exchange.name), exchange.type)
            for exchange in (REQUESTS, OUTCOMES)
        ]
        queues, bindings = self.topology.entry_queue_declarations(
            [self.proposal_submissions_queue, self.approval_responses_queue]
        )
        return exchanges, queues, bindings
