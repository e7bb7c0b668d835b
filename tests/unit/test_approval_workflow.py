"""The approval orchestrator on the pure engine: decisions, escalation, ignored answers, replay.

Each test drives one live executor through a history built step by step, as the orchestrator
service would, with a clock that the test advances.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts import (
    OrchestrationStatus,
    TaskScheduled,
    TimerCreated,
)
from engine import OrchestrationExecutor
from tests.helpers.history import T0, HistoryBuilder
from workflows.approval.config import ApprovalPlan, Assignment
from workflows.approval.messages import APPROVAL_ORCHESTRATOR, RESPONSE_EVENT
from workflows.approval.orchestrator import NOTIFY_RETRY_SECONDS, proposal_approval

PROPOSAL = {
    "proposal_id": "p-1",
    "author": "alice",
    "title": "New build pipeline",
    "amount": 800.0,
    "submitted_at": "2026-01-01T08:59:00Z",
}
PLAN = ApprovalPlan(
    chain=[
        Assignment(stage="manager", assignee="mia", response_seconds=60, reminder_seconds=30),
        Assignment(
            stage="head_of_department", assignee="hugo", response_seconds=120, reminder_seconds=30
        ),
    ],
    reminders=1,
    on_expiry="auto_rejected",
).model_dump(mode="json")


def response(approver: str, decision: str = "approve", **fields: Any) -> dict[str, Any]:
    return {
        "proposal_id": "p-1",
        "approver": approver,
        "decision": decision,
        "comment": fields.pop("comment", ""),
        "responded_at": "2026-01-01T09:00:10Z",
        **fields,
    }


class Run:
    """One instance: feed it events episode by episode, look at what it decided."""

    def __init__(self) -> None:
        self.history = HistoryBuilder()
        self.executor = OrchestrationExecutor(proposal_approval, "p-1")
        self.history.start(APPROVAL_ORCHESTRATOR, PROPOSAL)
        self.decision = self.executor.execute(self.history.events)
        self.history.events.extend(self.decision.new_events)

    def step(self, seconds: float = 1.0, **event: Any) -> Run:
        """One episode, ``seconds`` later, with one inbound event."""
        first_new = len(self.history.events)
        self.history.episode(seconds)
        if "completed" in event:
            self.history.completed(self.last_task().event_id, event["completed"])
        elif "failed" in event:
            self.history.failed(self.last_task().event_id, "PublishFailedError", "broker gone")
        elif "fired" in event:
            timer = self.last_timer()
            self.history.timer_fired(timer.event_id, timer.fire_at)
        elif "raised" in event:
            self.history.raised(RESPONSE_EVENT, event["raised"])
        self.decision = self.executor.execute(self.history.events[first_new:])
        self.history.events.extend(self.decision.new_events)
        return self

    def last_task(self) -> TaskScheduled:
        return [e for e in self.history.events if isinstance(e, TaskScheduled)][-1]

    def last_timer(self) -> TimerCreated:
        return [e for e in self.history.events if isinstance(e, TimerCreated)][-1]

    def planned(self) -> Run:
        assert self.last_task().name == "plan_approval"
        return self.step(completed=PLAN)

    def requested(self) -> dict[str, Any]:
        """Complete the pending ApprovalRequest publish; return the request it published."""
        task = self.last_task()
        assert task.name == "send_approval_request", task
        self.step(completed="message-id")
        assert isinstance(task.input, dict)
        return task.input

    @property
    def status(self) -> dict[str, Any]:
        assert isinstance(self.decision.custom_status, dict)
        return self.decision.custom_status

    def finish(self) -> dict[str, Any]:
        """Complete the ProposalOutcome publish; return the orchestration's output."""
        assert self.last_task().name == "send_proposal_outcome"
        self.step(completed="message-id")
        assert self.decision.status is OrchestrationStatus.COMPLETED
        assert isinstance(self.decision.output, dict)
        return self.decision.output


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_asks_the_planned_approver_and_shows_stage_assignee_and_deadline():
    run = Run()
    assert run.status == {
        "phase": "choosing_approver",
        "stage": None,
        "assignee": None,
        "deadline": None,
        "reminder": False,
        "escalations": 0,
        "outcome": None,
    }

    run.planned()  # at T0 + 1 s

    request = run.last_task().input
    assert request["assignee"] == "mia"
    assert request["stage"] == "manager"
    assert request["reminder"] is False
    assert request["deadline"] == at(61)
    assert request["proposal"]["proposal_id"] == "p-1"
    assert run.status["phase"] == "awaiting_response"
    assert (run.status["stage"], run.status["assignee"], run.status["deadline"]) == (
        "manager",
        "mia",
        at(61),
    )


def test_approval_in_time_decides_and_cancels_the_deadline():
    run = Run().planned()
    run.requested()
    deadline = run.last_timer()
    assert deadline.fire_at == datetime.fromisoformat(at(61))

    run.step(5, raised=response("mia", comment="go ahead"))

    assert run.decision.cancelled_timers == [deadline.event_id]
    outcome = run.last_task().input
    assert (outcome["outcome"], outcome["decided_by"], outcome["stage"]) == (
        "approved",
        "mia",
        "manager",
    )
    assert run.status["phase"] == "decided"
    assert run.status["outcome"] == "approved"
    output = run.finish()
    assert output["outcome"] == "approved"
    assert output["comment"] == "go ahead"
    assert output["escalations"] == []
    assert output["submitted_at"] == PROPOSAL["submitted_at"]
    assert output["started_at"] == at(0)
    assert output["decided_at"] == at(7)


def test_rejection_by_the_assignee_is_the_outcome():
    run = Run().planned()
    run.requested()

    run.step(raised=response("MIA", "reject", comment="too expensive"))

    output = run.finish()
    assert (output["outcome"], output["decided_by"], output["comment"]) == (
        "rejected",
        "MIA",
        "too expensive",
    )


def test_no_answer_brings_a_reminder_then_reassignment_and_the_higher_up_decides():
    run = Run().planned()
    run.requested()

    run.step(60, fired=True)
    reminder = run.last_task().input
    assert (reminder["assignee"], reminder["reminder"], reminder["deadline"]) == (
        "mia",
        True,
        at(62 + 30),
    )
    assert run.status["reminder"] is True
    assert run.status["escalations"] == 1
    run.requested()

    run.step(30, fired=True)
    reassigned = run.last_task().input
    assert reassigned["assignee"] == "hugo"
    assert reassigned["stage"] == "head_of_department"
    assert reassigned["level"] == 1
    assert reassigned["reassigned_from"] == "mia"
    assert reassigned["reminder"] is False
    assert (run.status["assignee"], run.status["escalations"]) == ("hugo", 2)
    run.requested()

    run.step(10, raised=response("hugo"))

    output = run.finish()
    assert (output["outcome"], output["decided_by"], output["stage"]) == (
        "approved",
        "hugo",
        "head_of_department",
    )
    assert [(e["kind"], e["previous_assignee"], e["assignee"]) for e in output["escalations"]] == [
        ("reminder", "mia", "mia"),
        ("reassignment", "mia", "hugo"),
    ]
    assert output["escalations"][0]["missed_deadline"] == at(61)
    assert output["escalations"][0]["at"] == at(62)


def test_when_nobody_answers_the_configured_outcome_applies():
    run = Run().planned()
    assignees = []
    for _ in range(4):
        assignees.append(run.last_task().input["assignee"])
        run.requested()
        run.step(120, fired=True)

    assert assignees == ["mia", "mia", "hugo", "hugo"]
    output = run.finish()
    assert output["outcome"] == "auto_rejected"
    assert output["decided_by"] is None
    assert output["stage"] == "head_of_department"
    assert [e["kind"] for e in output["escalations"]] == ["reminder", "reassignment", "reminder"]


def test_an_answer_from_someone_else_is_recorded_and_the_deadline_stays():
    run = Run().planned()
    run.requested()
    deadline = run.last_timer().fire_at

    run.step(10, raised=response("eve"))

    assert run.decision.status is OrchestrationStatus.RUNNING
    assert run.last_timer().fire_at == deadline  # waiting again, for the same deadline
    assert not any(isinstance(e, TaskScheduled) for e in run.decision.new_events)
    run.step(5, raised=response("mia"))
    output = run.finish()
    assert output["decided_by"] == "mia"
    assert output["ignored_responses"] == [
        {
            "received_at": at(12),
            "approver": "eve",
            "decision": "approve",
            "reason": "'eve' is not the assignee ('mia')",
        }
    ]


def test_a_late_answer_from_the_previous_assignee_changes_nothing():
    run = Run().planned()
    run.requested()
    run.step(60, fired=True)
    run.requested()
    run.step(30, fired=True)
    run.requested()  # now with hugo

    run.step(5, raised=response("mia", "reject"))
    assert run.decision.status is OrchestrationStatus.RUNNING
    run.step(5, raised=response("hugo"))

    output = run.finish()
    assert (output["outcome"], output["decided_by"]) == ("approved", "hugo")
    assert [r["approver"] for r in output["ignored_responses"]] == ["mia"]


def test_malformed_event_data_is_ignored_not_fatal():
    run = Run().planned()
    run.requested()

    run.step(raised={"approver": "mia", "decision": "maybe"})
    run.step(raised="yes")

    assert run.decision.status is OrchestrationStatus.RUNNING
    run.step(raised=response("mia"))
    output = run.finish()
    reasons = [r["reason"] for r in output["ignored_responses"]]
    assert all(reason.startswith("not an ApprovalResponse") for reason in reasons)
    assert len(reasons) == 2


def test_an_answer_raised_before_the_wait_is_used_without_a_deadline_timer():
    run = Run().planned()

    run.step(raised=response("mia"))  # while the request is still being published
    run.requested()

    assert not any(isinstance(e, TimerCreated) for e in run.history.events)
    assert run.finish()["decided_by"] == "mia"


def test_a_failed_publish_is_retried_on_a_durable_timer():
    run = Run().planned()

    run.step(failed=True)

    retry = run.last_timer()
    assert retry.fire_at == run.history.now + timedelta(seconds=NOTIFY_RETRY_SECONDS)
    run.step(NOTIFY_RETRY_SECONDS, fired=True)
    assert run.last_task().name == "send_approval_request"


def test_replaying_the_history_reproduces_the_outcome():
    run = Run().planned()
    run.requested()
    run.step(10, raised=response("eve"))
    run.step(60, fired=True)
    run.requested()
    run.step(5, raised=response("mia"))
    output = run.finish()

    replayed = OrchestrationExecutor(proposal_approval, "p-1")
    replayed.replay(run.history.events)

    assert replayed.is_finished
    assert replayed.decide().output == output
