"""The Learn exercise's human-interaction flow, over HTTP only (issue 3, item 6).

A client starts the orchestration with POST, polls ``statusQueryGetUri`` (202, Running),
approves through ``sendEventPostUri``, and polls again (200, Completed, the approval in the
output). Without an approval in time, the output shows the time-out. The same flow runs the
proposal-approval workflow itself, whose output then shows the escalations.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.helpers import approval
from tests.helpers.http import PREFIX, poll_until_ended, poll_until_status
from tests.helpers.waiting import assert_eventually
from workflows.approval.messages import APPROVAL_ORCHESTRATOR, RESPONSE_EVENT

pytestmark = pytest.mark.e2e


async def test_an_approval_sent_through_send_event_post_uri_completes_the_instance(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=60)
    assert started.status_code == 202, started.text
    links = started.json()
    assert started.headers["Location"] == links["statusQueryGetUri"]

    running = await poll_until_status(http, links["statusQueryGetUri"], "Running")
    assert running.status_code == 202
    assert running.headers["Location"] == links["statusQueryGetUri"]
    assert running.headers["Retry-After"] == "5"
    assert running.json()["output"] is None

    approval = {"approved": True, "by": "manager@example.com"}
    sent = await http.post(
        links["sendEventPostUri"].replace("{eventName}", "Approval"), json=approval
    )
    assert sent.status_code == 202, sent.text
    assert sent.content == b""

    done = await poll_until_ended(http, links["statusQueryGetUri"])
    body = done.json()
    assert "Location" not in done.headers
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"answer": approval}
    assert body["instanceId"] == links["id"]
    history = await http.get(
        links["statusQueryGetUri"], params={"showHistory": "true", "showHistoryOutput": "true"}
    )
    events = history.json()["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TimerCreated",
        "EventRaised",
        "ExecutionCompleted",
    ]
    assert events[2]["Name"] == "Approval"
    assert events[3]["Result"] == {"answer": approval}
    late = await http.post(links["sendEventPostUri"].replace("{eventName}", "Approval"), json=True)
    assert late.status_code == 410


async def test_without_an_approval_in_time_the_output_shows_the_timeout(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=1)
    links = started.json()

    running = await http.get(links["statusQueryGetUri"])
    assert running.status_code == 202
    done = await poll_until_ended(http, links["statusQueryGetUri"], timeout=30)

    body = done.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"timed_out": True}
    history = await http.get(links["statusQueryGetUri"], params={"showHistory": "true"})
    assert "TimerFired" in [e["EventType"] for e in history.json()["historyEvents"]]


async def test_the_learn_exercise_runs_the_proposal_approval_workflow_over_http(
    http: httpx.AsyncClient,
) -> None:
    proposal_id = f"learn-{uuid.uuid4().hex[:8]}"
    body = approval.proposal(proposal_id, amount=800).model_dump(mode="json")
    started = await http.post(
        f"{PREFIX}/orchestrators/{APPROVAL_ORCHESTRATOR}/{proposal_id}", json=body
    )
    assert started.status_code == 202, started.text
    links = started.json()

    async def awaiting_the_manager() -> httpx.Response:
        status = await http.get(links["statusQueryGetUri"])
        custom = status.json()["customStatus"] or {}
        assert status.status_code == 202
        assert custom.get("phase") == "awaiting_response", custom
        return status

    waiting = await assert_eventually(awaiting_the_manager, timeout=30)
    assert waiting.json()["runtimeStatus"] == "Running"
    assert waiting.json()["customStatus"]["assignee"] == approval.MANAGER

    answer = approval.response(proposal_id, approval.MANAGER, "approve", "looks good").body
    sent = await http.post(
        links["sendEventPostUri"].replace("{eventName}", RESPONSE_EVENT),
        json=answer.model_dump(mode="json"),
    )
    assert sent.status_code == 202, sent.text

    done = await poll_until_ended(http, links["statusQueryGetUri"], timeout=30)
    assert done.status_code == 200
    record = done.json()["output"]
    assert done.json()["runtimeStatus"] == "Completed"
    assert record["outcome"] == "approved"
    assert record["decided_by"] == approval.MANAGER
    assert record["escalations"] == []


async def test_the_learn_exercise_without_an_answer_shows_the_escalation_in_the_output(
    http: httpx.AsyncClient,
) -> None:
    proposal_id = f"learn-{uuid.uuid4().hex[:8]}"
    body = approval.proposal(proposal_id, amount=800).model_dump(mode="json")
    started = await http.post(
        f"{PREFIX}/orchestrators/{APPROVAL_ORCHESTRATOR}/{proposal_id}", json=body
    )
    links = started.json()

    done = await poll_until_ended(http, links["statusQueryGetUri"], timeout=60)

    record = done.json()["output"]
    assert record["outcome"] == "auto_rejected"
    kinds = [(e["kind"], e["assignee"]) for e in record["escalations"]]
    assert kinds == [
        ("reminder", approval.MANAGER),
        ("reassignment", approval.HEAD),
        ("reminder", approval.HEAD),
    ]
