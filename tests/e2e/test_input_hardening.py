"""Input that used to break the services, refused where it enters (issue 14's problems 1-3,
7 and 8's bad values), on the session's real services. (Problem 6, the retried start:
``test_idempotent_start.py``.)

Each test sends what a careless client or an attacker sent, and checks that the answer is a
clear refusal (400, 413, or a dead letter with its reason), that nothing was written, and that
the services go on: the instance involved is not left Pending or Running for good.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import psutil
import pytest

from contracts import OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.conftest import AMQP_URL, START_KEY, unique
from tests.helpers.approval import (
    ApprovalBus,
    approval_bus,
    dead_letters,
    header,
    proposal,
    response,
    submission,
)
from tests.helpers.http import PREFIX, poll_until_ended, poll_until_status
from tests.helpers.waiting import assert_eventually
from workflows.approval.topology import ApprovalTopology

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


async def assert_healthy(http: httpx.AsyncClient) -> None:
    """The client's event loop is free: /healthz answers at once."""
    started = time.monotonic()
    response = await http.get("/healthz", timeout=2.0)
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0


# --- 1: bodies that froze the client or answered 500 -----------------------------------------


async def test_a_deeply_nested_body_is_refused_at_once_and_the_client_stays_free(
    http: httpx.AsyncClient,
) -> None:
    body = "[" * 500 + "]" * 500  # about 1 KB

    started = time.monotonic()
    answer = await http.post(
        f"{PREFIX}/orchestrators/hello_cities",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400, answer.text
    assert time.monotonic() - started < 2.0
    assert "the input" in answer.json()["message"]
    await assert_healthy(http)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"NaN", "Invalid JSON content in the input"),
        (b"[Infinity]", "Invalid JSON content in the input"),
        (b'{"n": -Infinity}', "Invalid JSON content in the input"),
        (b'["\\ud800"]', "Invalid JSON content in the input"),
        (b'{"note": "ok\\u0000"}', "$.note is a string holding U+0000"),
        (b'{"k\\u0000": 1}', "has a key holding U+0000"),
        (b"[1e400]", "$[0] is the number inf"),
        (b"[" * 65 + b"]" * 65, "nests deeper than 64 levels"),
    ],
    ids=["nan", "infinity", "minus-infinity", "surrogate", "nul", "nul-key", "overflow", "deep"],
)
async def test_a_body_no_layer_could_store_is_refused_with_400_naming_the_problem(
    http: httpx.AsyncClient, client: DurableClient, body: bytes, problem: str
) -> None:
    instance_id = unique("bad-input-")

    answer = await http.post(
        f"{PREFIX}/orchestrators/hello_cities/{instance_id}",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["message"]
    assert answer.json()["ExceptionMessage"] == answer.json()["message"]
    assert await client.get_status(instance_id) is None
    await assert_healthy(http)


# --- 2: a NUL character in an event's data ----------------------------------------------------


async def test_an_event_whose_data_holds_nul_is_refused_and_the_instance_goes_on(
    base_url: str, http: httpx.AsyncClient
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=60)
    assert started.status_code == 202, started.text
    status_url = started.json()["statusQueryGetUri"]
    event_url = f"{PREFIX}/instances/{started.json()['id']}/raiseEvent/Approval"
    await poll_until_status(http, status_url, "Running")

    # A start key was enough to wedge an instance this way.
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as caller:
        refused = await caller.post(
            event_url,
            content=b'{"note": "ok\\u0000"}',
            headers={"Content-Type": "application/json", "x-functions-key": START_KEY},
        )
        assert refused.status_code == 400, refused.text
        assert "$.note is a string holding U+0000" in refused.json()["message"]

        accepted = await caller.post(
            event_url, json={"note": "ok"}, headers={"x-functions-key": START_KEY}
        )
        assert accepted.status_code == 202, accepted.text

    ended = await poll_until_ended(http, status_url)
    assert ended.json()["runtimeStatus"] == "Completed"
    assert ended.json()["output"] == {"answer": {"note": "ok"}}


async def test_an_approvers_comment_holding_nul_is_dead_lettered_and_the_proposal_goes_on(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    proposal_id = unique("p-nul-")
    await bus.submit(proposal(proposal_id))
    await bus.request(proposal_id, 1)
    answer = json.loads(response(proposal_id, "anyone").model_dump_json())
    answer["body"]["comment"] = "ok\x00"

    await bus.publish(
        ApprovalTopology(topology).approval_responses_queue, json.dumps(answer).encode()
    )

    queue_name = ApprovalTopology(topology).approval_responses_queue
    [dead] = await dead_letters(
        bus.channel, queue_name, lambda m: proposal_id.encode() in m.body, count=1
    )
    reason = header(dead, "x-dead-letter-reason")
    assert "comment" in reason
    assert "U+0000" in reason
    status = await client.get_status(proposal_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.RUNNING
    assert isinstance(status.custom_status, dict)
    assert status.custom_status["phase"] == "awaiting_response"


# --- 3: ids longer than AMQP's short strings ---------------------------------------------------


@pytest.mark.parametrize(
    "instance_id",
    ["a" * 256, "😀" * 64, "x" * 200 + "é" * 28],
    ids=["256-ascii", "64-emoji", "256-bytes-mixed"],
)
async def test_an_instance_id_longer_than_255_bytes_is_refused(
    http: httpx.AsyncClient, client: DurableClient, instance_id: str
) -> None:
    answer = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}")

    assert answer.status_code == 400, answer.text
    assert "more than the 255 allowed" in answer.json()["message"]
    assert await client.get_status(instance_id) is None


@pytest.mark.parametrize(
    "template", ["{id}%2F", "{id}%2fmore", "%2F{id}"], ids=["at-the-end", "inside", "first"]
)
async def test_an_instance_id_holding_an_escaped_slash_is_refused_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient, template: str
) -> None:
    # The server decodes %2F before routing: "<id>%2F" was redirected (307) to the start of
    # "<id>", a different instance, and "<id>%2Fmore" answered 404 as if no route existed.
    instance_id = unique("slash-")

    answer = await http.post(
        f"{PREFIX}/orchestrators/hello_cities/{template.format(id=instance_id)}",
        follow_redirects=True,
    )

    assert answer.status_code == 400, answer.text
    assert "escaped / (%2F)" in answer.json()["message"]
    assert await client.get_status(instance_id) is None


async def test_an_event_name_holding_an_escaped_slash_is_refused_and_sends_nothing(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=60)
    status_url = started.json()["statusQueryGetUri"]
    await poll_until_status(http, status_url, "Running")

    answer = await http.post(
        f"{PREFIX}/instances/{started.json()['id']}/raiseEvent/Approval%2F",
        json="yes",
        follow_redirects=True,
    )

    assert answer.status_code == 400, answer.text
    assert "escaped / (%2F)" in answer.json()["message"]
    status = await http.get(status_url)
    assert status.json()["runtimeStatus"] == "Running"
    terminated = await http.post(f"{PREFIX}/instances/{started.json()['id']}/terminate")
    assert terminated.status_code == 202


async def test_an_instance_id_of_255_bytes_runs(http: httpx.AsyncClient) -> None:
    instance_id = unique("long-") + "é" * 50
    instance_id += "x" * (255 - len(instance_id.encode()))
    assert len(instance_id.encode()) == 255

    answer = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}")

    assert answer.status_code == 202, answer.text
    ended = await poll_until_ended(http, answer.json()["statusQueryGetUri"])
    assert ended.json()["runtimeStatus"] == "Completed"


async def test_a_submission_whose_correlation_id_is_too_long_is_dead_lettered_and_a_resend_starts(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    proposal_id = unique("p-corr-")
    bad = json.loads(submission(proposal(proposal_id)).model_dump_json())
    bad["envelope"]["correlation_id"] = "c" * 300

    await bus.publish(
        ApprovalTopology(topology).proposal_submissions_queue, json.dumps(bad).encode()
    )

    [dead] = await dead_letters(
        bus.channel,
        ApprovalTopology(topology).proposal_submissions_queue,
        lambda m: proposal_id.encode() in m.body,
        count=1,
    )
    reason = header(dead, "x-dead-letter-reason")
    assert "correlation_id" in reason
    assert "300 bytes" in reason
    assert await client.get_status(proposal_id) is None
    # Nothing was recorded for it, so the submitter's corrected re-send is not a duplicate.
    await bus.submit(proposal(proposal_id))

    async def started() -> bool:
        status = await client.get_status(proposal_id)
        assert status is not None
        assert status.runtime_status is OrchestrationStatus.RUNNING
        return True

    await assert_eventually(started, timeout=20)


# --- 7: request size ---------------------------------------------------------------------------


def client_memory(services: ServiceGroup) -> int:
    process = services["client"].process
    assert process is not None
    return int(psutil.Process(process.pid).memory_info().rss)


async def test_a_100_mb_start_is_refused_with_413_without_being_read(
    http: httpx.AsyncClient, client: DurableClient, services: ServiceGroup
) -> None:
    instance_id = unique("huge-")
    before = client_memory(services)
    body = b'"' + b"x" * (100 * 1024 * 1024) + b'"'

    started = time.monotonic()
    try:
        answer = await http.post(
            f"{PREFIX}/orchestrators/hello_cities/{instance_id}",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30.0,
        )
    except httpx.WriteError:
        answer = None  # the server answered and closed before the whole body was sent

    if answer is not None:
        assert answer.status_code == 413, answer.text[:200]
        assert "DF_HTTP_MAX_BODY_BYTES" in answer.json()["message"]
    assert time.monotonic() - started < 10.0
    assert client_memory(services) - before < 50 * 1024 * 1024
    assert await client.get_status(instance_id) is None
    await assert_healthy(http)


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length: a JSON string sent in pieces."""
    yield b'"'
    for _ in range(total // size):
        yield b"y" * size
    yield b'"'


async def test_a_streamed_body_is_cut_off_at_the_limit(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("streamed-")

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks(20 * 1024 * 1024):
            yield chunk

    try:
        answer = await http.post(
            f"{PREFIX}/orchestrators/hello_cities/{instance_id}",
            content=body(),
            headers={"Content-Type": "application/json"},
        )
    except httpx.WriteError:
        answer = None

    if answer is not None:
        assert answer.status_code == 413, answer.text[:200]
    assert await client.get_status(instance_id) is None
    await assert_healthy(http)


async def test_a_value_over_the_size_limit_is_refused_with_400(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("large-")
    value = "z" * (2 * 1024 * 1024)  # within the body limit, over DF_MAX_VALUE_BYTES

    answer = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}", json=value)

    assert answer.status_code == 400, answer.text[:200]
    assert "more than the limit of 2097152 (DF_MAX_VALUE_BYTES)" in answer.json()["message"]
    assert await client.get_status(instance_id) is None


# --- 8: NUL in names, filters and ids ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/instances", {"name": "hello\x00cities"}),
        ("/instances", {"instanceIdPrefix": "abc\x00"}),
        ("/instances", {"customStatus": '{"stage": "x\x00"}'}),
        ("/instances/abc%00def", {}),
    ],
    ids=["name", "prefix", "custom-status", "instance-id"],
)
async def test_nul_in_a_filter_or_an_id_answers_400(
    http: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    answer = await http.get(f"{PREFIX}{path}", params=params)

    assert answer.status_code == 400, answer.text
    assert "U+0000" in answer.json()["message"]


async def test_an_escaped_nul_in_the_custom_status_filter_answers_400(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.get(f"{PREFIX}/instances", params={"customStatus": '{"s": "\\u0000"}'})

    assert answer.status_code == 400, answer.text
    assert "the customStatus filter cannot be stored" in answer.json()["message"]


async def test_an_event_name_longer_than_255_bytes_is_refused(http: httpx.AsyncClient) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=60)
    instance_id = started.json()["id"]
    await poll_until_status(http, started.json()["statusQueryGetUri"], "Running")

    answer = await http.post(
        f"{PREFIX}/instances/{instance_id}/raiseEvent/{'E' * 256}",
        content=b"null",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400, answer.text
    assert "the event name cannot be stored" in answer.json()["message"]
    terminated = await http.post(f"{PREFIX}/instances/{instance_id}/terminate")
    assert terminated.status_code == 202
