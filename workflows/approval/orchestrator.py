"""The proposal-approval workflow with escalation (the product's origin, SEED-durable-functions).

A submitted proposal is assigned to an approver chosen from the configured hierarchy by its size
(``plan_approval``). The approver gets an ``ApprovalRequest`` and has until its deadline to
answer. If they don't, they get a reminder with a new deadline; if that passes too, the proposal
is reassigned to the next level up, and so on up to the top level, after which the configured
outcome (``expired`` or ``auto_rejected``) applies. Only the current assignee's answer decides;
any other answer is recorded and the wait goes on with the same deadline. The author gets a
``ProposalOutcome``. Deadlines and hierarchy: ``workflows.approval.config``.

Built only from the public orchestration API. Loaded through ``DF_FUNCTION_MODULES``; the
workflow's broker entry points (``workflows.approval.inbound``), which the client service
consumes, start ``proposal_approval`` for every ``ProposalSubmitted`` and turn every
``ApprovalResponse`` its approver published into its ``ApprovalResponse`` external event, which
is a protected event: over HTTP only a management key may raise it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from contracts import deterministic_message_id
from durable import (
    ActivityContext,
    EventTimeoutError,
    FunctionApp,
    OrchestrationContext,
    TaskFailedError,
)
from workflows.approval.config import ApprovalPlan, ApprovalSettings, Assignment
from workflows.approval.messages import (
    APPROVAL_ORCHESTRATOR,
    RESPONSE_EVENT,
    ApprovalProgress,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalRequestMessage,
    ApprovalResponse,
    Escalation,
    IgnoredResponse,
    Outcome,
    ProposalOutcome,
    ProposalOutcomeMessage,
    ProposalSubmitted,
    approval_envelope,
)
from workflows.approval.publisher import approval_publisher

app = FunctionApp()

NOTIFY_ATTEMPTS = 4
NOTIFY_RETRY_SECONDS = 5.0

Work = Generator[Any, Any, Any]


@dataclass
class _Review:
    """What the orchestrator has learned so far about one proposal (rebuilt by replay)."""

    proposal: ProposalSubmitted
    started_at: datetime
    escalations: list[Escalation] = field(default_factory=list)
    ignored: list[IgnoredResponse] = field(default_factory=list)


# An answer decides the proposal: over HTTP only a management key may raise it, never a start
# key; over the broker the client service checks who published it (docs/approval.md).
@app.orchestrator(name=APPROVAL_ORCHESTRATOR, protected_events=[RESPONSE_EVENT])
def proposal_approval(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Input: a ``ProposalSubmitted`` body. Output: an ``ApprovalRecord``."""
    proposal = ProposalSubmitted.model_validate(ctx.get_input())
    review = _Review(proposal, started_at=ctx.current_utc_datetime)
    ctx.set_custom_status(ApprovalProgress(phase="choosing_approver").model_dump(mode="json"))
    plan = ApprovalPlan.model_validate(
        (yield ctx.call_activity("plan_approval", proposal.model_dump(mode="json")))
    )
    previous: Assignment | None = None
    missed: datetime | None = None
    for level, assignment, reminder in _steps(plan):
        now = ctx.current_utc_datetime
        if previous is not None and missed is not None:
            review.escalations.append(
                Escalation(
                    kind="reminder" if reminder else "reassignment",
                    at=now,
                    missed_deadline=missed,
                    previous_assignee=previous.assignee,
                    assignee=assignment.assignee,
                    stage=assignment.stage,
                )
            )
        seconds = assignment.reminder_seconds if reminder else assignment.response_seconds
        deadline = now + timedelta(seconds=seconds)
        ctx.set_custom_status(
            ApprovalProgress(
                phase="awaiting_response",
                stage=assignment.stage,
                assignee=assignment.assignee,
                deadline=deadline,
                reminder=reminder,
                escalations=len(review.escalations),
            ).model_dump(mode="json")
        )
        request = ApprovalRequest(
            proposal=proposal,
            assignee=assignment.assignee,
            stage=assignment.stage,
            level=level,
            reminder=reminder,
            reassigned_from=previous.assignee if previous and not reminder else None,
            requested_at=now,
            deadline=deadline,
        )
        yield from _notify(ctx, "send_approval_request", request.model_dump(mode="json"))
        answer = yield from _wait_for_assignee(ctx, review, assignment, deadline)
        if answer is not None:
            outcome: Outcome = "approved" if answer.decision == "approve" else "rejected"
            return (yield from _finish(ctx, review, outcome, assignment, answer))
        previous, missed = assignment, deadline
    return (yield from _finish(ctx, review, plan.on_expiry, previous, None))


def _steps(plan: ApprovalPlan) -> list[tuple[int, Assignment, bool]]:
    """(level, assignment, is a reminder) for each request, in order: each level is asked once,
    then reminded ``plan.reminders`` times, before the next level up is asked."""
    return [
        (level, assignment, attempt > 0)
        for level, assignment in enumerate(plan.chain)
        for attempt in range(plan.reminders + 1)
    ]


def _wait_for_assignee(
    ctx: OrchestrationContext, review: _Review, assignment: Assignment, deadline: datetime
) -> Generator[Any, Any, ApprovalResponse | None]:
    """The assignee's answer, or None when ``deadline`` passes first.

    Any other answer is noted in ``review.ignored`` and the wait resumes with what is left of
    the same deadline, so nobody can extend or cut short the assignee's time.
    """
    while True:
        remaining = max(deadline - ctx.current_utc_datetime, timedelta(0))
        try:
            data = yield ctx.wait_for_external_event(RESPONSE_EVENT, timeout=remaining)
        except EventTimeoutError:
            return None
        reason = None
        try:
            answer = ApprovalResponse.model_validate(data)
        except ValidationError as error:
            answer, reason = None, f"not an ApprovalResponse: {error.error_count()} error(s)"
        if answer is not None and answer.proposal_id != review.proposal.proposal_id:
            reason = f"answers proposal {answer.proposal_id!r}"
        elif answer is not None and answer.approver.casefold() != assignment.assignee.casefold():
            reason = f"{answer.approver!r} is not the assignee ({assignment.assignee!r})"
        if reason is None and answer is not None:
            return answer
        fields = data if isinstance(data, dict) else {}
        review.ignored.append(
            IgnoredResponse(
                received_at=ctx.current_utc_datetime,
                approver=_text(fields.get("approver")),
                decision=_text(fields.get("decision")),
                reason=reason or "ignored",
            )
        )


def _finish(
    ctx: OrchestrationContext,
    review: _Review,
    outcome: Outcome,
    assignment: Assignment | None,
    answer: ApprovalResponse | None,
) -> Generator[Any, Any, dict[str, Any]]:
    """Tell the author, and return the record."""
    proposal = review.proposal
    decided = ProposalOutcome(
        proposal_id=proposal.proposal_id,
        author=proposal.author,
        title=proposal.title,
        outcome=outcome,
        decided_by=answer.approver if answer else None,
        stage=assignment.stage if assignment else None,
        comment=answer.comment if answer else "",
        escalations=review.escalations,
        submitted_at=proposal.submitted_at,
        started_at=review.started_at,
        decided_at=ctx.current_utc_datetime,
    )
    ctx.set_custom_status(
        ApprovalProgress(
            phase="decided",
            stage=decided.stage,
            assignee=assignment.assignee if assignment else None,
            escalations=len(review.escalations),
            outcome=outcome,
        ).model_dump(mode="json")
    )
    yield from _notify(ctx, "send_proposal_outcome", decided.model_dump(mode="json"))
    record = ApprovalRecord(**decided.model_dump(), ignored_responses=review.ignored)
    return record.model_dump(mode="json")


def _notify(ctx: OrchestrationContext, activity: str, payload: dict[str, Any]) -> Work:
    """Run a publishing activity; if the broker is unavailable, try again on durable timers."""
    for attempt in range(NOTIFY_ATTEMPTS):
        try:
            return (yield ctx.call_activity(activity, payload))
        except TaskFailedError:
            if attempt + 1 == NOTIFY_ATTEMPTS:
                raise
        yield ctx.create_timer(timedelta(seconds=NOTIFY_RETRY_SECONDS * 2**attempt))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


# --- activities -------------------------------------------------------------------------------


@app.activity
def plan_approval(proposal: dict[str, Any]) -> dict[str, Any]:
    """Choose the chain of approvers and the deadlines for a proposal, from the settings."""
    submitted = ProposalSubmitted.model_validate(proposal)
    return ApprovalSettings().plan_for(submitted).model_dump(mode="json")


@app.activity
async def send_approval_request(request: dict[str, Any], context: ActivityContext) -> str:
    """Publish an ``ApprovalRequest`` for its assignee; return its message id."""
    body = ApprovalRequest.model_validate(request)
    message = ApprovalRequestMessage(
        envelope=approval_envelope(
            "ApprovalRequest",
            body.proposal.proposal_id,
            message_id=deterministic_message_id(context.idempotency_key, "ApprovalRequest"),
            sent_at=datetime.now(UTC),
        ),
        body=body,
    )
    await approval_publisher().publish_request(message)
    return str(message.envelope.message_id)


@app.activity
async def send_proposal_outcome(outcome: dict[str, Any], context: ActivityContext) -> str:
    """Publish a ``ProposalOutcome`` for its author; return its message id."""
    body = ProposalOutcome.model_validate(outcome)
    message = ProposalOutcomeMessage(
        envelope=approval_envelope(
            "ProposalOutcome",
            body.proposal_id,
            message_id=deterministic_message_id(context.idempotency_key, "ProposalOutcome"),
            sent_at=datetime.now(UTC),
        ),
        body=body,
    )
    await approval_publisher().publish_outcome(message)
    return str(message.envelope.message_id)
