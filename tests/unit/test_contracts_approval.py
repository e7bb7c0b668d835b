"""The approval workflow's messages and topology: strict, enveloped, declared like the rest."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from contracts import Topology
from workflows.approval.messages import (
    ApprovalResponseMessage,
    ProposalOutcomeMessage,
    ProposalSubmittedMessage,
)
from workflows.approval.topology import ApprovalTopology

SUBMITTED_AT = "2026-01-01T09:00:00+00:00"


def submission(**body_overrides):
    body = {
        "proposal_id": "p-42",
        "author": "alice",
        "title": "New build pipeline",
        "amount": 1200,
        "submitted_at": SUBMITTED_AT,
    } | body_overrides
    return {
        "envelope": {
            "message_id": str(uuid.UUID(int=7)),
            "instance_id": body["proposal_id"],
            "correlation_id": "c-1",
            "type": "ProposalSubmitted",
            "sent_at": SUBMITTED_AT,
        },
        "body": body,
    }


def test_a_submission_round_trips_through_json():
    message = ProposalSubmittedMessage.model_validate(submission(department="platform"))

    again = ProposalSubmittedMessage.model_validate_json(message.model_dump_json())

    assert again == message
    assert again.body.currency == "EUR"
    assert again.proposal_id == "p-42"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m["envelope"].update(type="ApprovalResponse"), "is not 'ProposalSubmitted'"),
        (lambda m: m["envelope"].update(instance_id="p-43"), "is not the proposal id"),
        (lambda m: m["envelope"].update(schema_version=99), "newer than this service"),
        (lambda m: m["body"].update(amount=-1), "greater than or equal to 0"),
        (lambda m: m["body"].update(submitted_at="2026-01-01T09:00:00"), "timezone"),
        (lambda m: m["body"].update(author="two words"), "pattern"),
        (lambda m: m["body"].update(surprise=True), "Extra inputs"),
        (lambda m: m["body"].pop("title"), "Field required"),
    ],
)
def test_a_submission_that_breaks_the_contract_is_refused_with_the_reason(change, words):
    message = submission()
    change(message)

    with pytest.raises(ValidationError, match=words):
        ProposalSubmittedMessage.model_validate(message)


def test_a_response_is_approve_or_reject_and_frozen():
    message = {
        "envelope": {
            "message_id": str(uuid.UUID(int=8)),
            "instance_id": "p-42",
            "correlation_id": "p-42",
            "type": "ApprovalResponse",
            "sent_at": SUBMITTED_AT,
        },
        "body": {
            "proposal_id": "p-42",
            "approver": "mia",
            "decision": "approve",
            "responded_at": SUBMITTED_AT,
        },
    }
    response = ApprovalResponseMessage.model_validate(message)
    with pytest.raises(ValidationError):
        response.body.decision = "reject"  # type: ignore[misc]

    message["body"]["decision"] = "maybe"
    with pytest.raises(ValidationError, match="'approve' or 'reject'"):
        ApprovalResponseMessage.model_validate(message)


def test_an_outcome_names_the_proposal_in_its_envelope():
    body = {
        "proposal_id": "p-42",
        "author": "alice",
        "title": "t",
        "outcome": "expired",
        "submitted_at": SUBMITTED_AT,
        "started_at": SUBMITTED_AT,
        "decided_at": SUBMITTED_AT,
    }
    envelope = submission()["envelope"] | {"type": "ProposalOutcome"}

    assert ProposalOutcomeMessage.model_validate({"envelope": envelope, "body": body}).body
    with pytest.raises(ValidationError, match="is not the proposal id"):
        ProposalOutcomeMessage.model_validate(
            {"envelope": envelope | {"instance_id": "other"}, "body": body}
        )


def test_approval_queues_are_quorum_work_queues_with_dead_letter_queues():
    topology = Topology(namespace="t1")

    approval = ApprovalTopology(topology)

    exchanges, queues, bindings = approval.declarations()

    assert {(e.name, e.type) for e in exchanges} == {
        ("t1.approval.requests", "topic"),
        ("t1.approval.outcomes", "topic"),
        ("t1.approval.submissions", "fanout"),
        ("t1.approval.responses", "fanout"),
    }
    assert {(e.name, e.type) for e in approval.outbound_exchanges()} == {
        ("t1.approval.requests", "topic"),
        ("t1.approval.outcomes", "topic"),
    }
    by_name = {q.name: q.arguments for q in queues}
    for name in (
        approval.proposal_submissions_queue,
        approval.approval_responses_queue,
    ):
        assert by_name[name]["x-queue-type"] == "quorum"
        assert by_name[name]["x-delivery-limit"] == topology.delivery_limit
        assert by_name[name]["x-dead-letter-routing-key"] == f"{name}.dlq"
        assert by_name[f"{name}.dlq"] == {"x-queue-type": "quorum"}
        assert any(
            b.queue == f"{name}.dlq" and b.exchange == topology.dead_letter_exchange
            for b in bindings
        )
    assert all(name.startswith("t1.approval.") for name in by_name)
