"""The Learn exercise's human-interaction flow, over HTTP only (issue 3, item 6).

A client starts the orchestration with POST, polls ``statusQueryGetUri`` (202, Running),
approves through ``sendEventPostUri``, and polls again (200, Completed, the approval in the
output). Without an approval in time, the output shows the time-out.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.http import PREFIX, poll_until_ended, poll_until_status

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
