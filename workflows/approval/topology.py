"""The approval workflow's queues and exchanges, within the deployment's namespace.

In: submitting systems and approvers publish to two work queues (the workflow's broker entry
points, ``workflows.approval.entry_points``), each through its own exchange of the same name,
which routes to it alone (the default exchange still routes there too, for a user who may
write to it). Out: the workflow publishes to two topic
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
    def proposal_submissions_exchange(self) -> str:
        """Where a submitting system publishes (routes to the submissions queue alone)."""
        return self.topology.entry_exchange(self.proposal_submissions_queue)

    @property
    def approval_responses_exchange(self) -> str:
        """Where approvers and gateways publish (routes to the responses queue alone)."""
        return self.topology.entry_exchange(self.approval_responses_queue)

    @property
    def approval_requests_exchange(self) -> str:
        return self.topology.workflow_name(REQUESTS.name)

    @property
    def proposal_outcomes_exchange(self) -> str:
        return self.topology.workflow_name(OUTCOMES.name)

    def outbound_exchanges(self) -> list[ExchangeSpec]:
        """The two exchanges the workflow's activities publish to."""
        return [
            ExchangeSpec(self.topology.workflow_name(exchange.name), exchange.type)
            for exchange in (REQUESTS, OUTCOMES)
        ]

    def declarations(self) -> tuple[list[ExchangeSpec], list[QueueSpec], list[BindingSpec]]:
        """The two outbound exchanges and the two inbound queues' own, the inbound queues
        with their dead-letter queues, and their bindings (what the client service declares
        for the entry points)."""
        inbound = [self.proposal_submissions_queue, self.approval_responses_queue]
        exchanges = self.outbound_exchanges() + self.topology.entry_exchange_declarations(inbound)
        queues, bindings = self.topology.entry_queue_declarations(inbound)
        return exchanges, queues, bindings
