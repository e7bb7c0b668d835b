"""A start a caller can repeat (issue 14's problem 6): ``ifExists=useExisting`` keeps an
existing instance of the same orchestrator, whatever its state, and starts nothing; Durable
Functions' default replaces an ended one and runs the workflow again. On the session's real
services."""

from __future__ import annotations

import httpx
import pytest

from durable.client import DurableClient
from durable.store.instances import ExistingInstancePolicy
from tests.conftest import START_KEY, unique
from tests.helpers.http import PREFIX, poll_until_ended

pytestmark = pytest.mark.e2e


async def test_an_idempotent_start_never_runs_the_workflow_twice(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("once-")
    url = f"{PREFIX}/orchestrators/hello_cities/{instance_id}"

    first = await http.post(url, params={"ifExists": "useExisting"}, json=["Oslo"])
    assert first.status_code == 202, first.text
    ended = await poll_until_ended(http, first.json()["statusQueryGetUri"])
    # The caller never got the first answer and tries again, after the first run has ended.
    retry = await http.post(url, params={"ifExists": "useExisting"}, json=["Oslo"])

    assert retry.status_code == 200, retry.text
    assert retry.json()["instanceId"] == instance_id
    assert retry.json()["runtimeStatus"] == "Completed"
    assert retry.json()["output"] == ended.json()["output"]
    assert retry.json()["createdTime"] == ended.json()["createdTime"]
    assert retry.headers["Location"] == first.headers["Location"]
    history = await client.get_history(instance_id)
    assert [e.event.event_type for e in history].count("ExecutionStarted") == 1
    # Durable Functions' default, for comparison: the ended instance is replaced and runs again.
    replaced = await http.post(url, json=["Oslo"])
    assert replaced.status_code == 202


async def test_an_idempotent_start_of_a_new_id_starts_it(http: httpx.AsyncClient) -> None:
    url = f"{PREFIX}/orchestrators/hello_cities/{unique('once-')}"

    answer = await http.post(url, params={"ifExists": "use_existing"})

    assert answer.status_code == 202, answer.text
    ended = await poll_until_ended(http, answer.json()["statusQueryGetUri"])
    assert ended.json()["runtimeStatus"] == "Completed"


async def test_the_python_client_says_whether_its_start_created_the_instance(
    client: DurableClient,
) -> None:
    instance_id = unique("once-")
    policy = ExistingInstancePolicy.USE_EXISTING

    first = await client.start("hello_cities", instance_id, ["Oslo"], if_exists=policy)
    second = await client.start("hello_cities", instance_id, ["Rome"], if_exists=policy)

    assert (first.created, second.created) == (True, False)
    status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.input == ["Oslo"]


async def test_an_unknown_if_exists_is_refused(http: httpx.AsyncClient) -> None:
    url = f"{PREFIX}/orchestrators/hello_cities/{unique('once-')}"

    answer = await http.post(url, params={"ifExists": "sometimes"})

    assert answer.status_code == 400
    assert "ifExists must be" in answer.json()["message"]


async def test_a_start_key_is_answered_an_existing_instances_links_never_its_status(
    base_url: str, http: httpx.AsyncClient
) -> None:
    instance_id = unique("private-")
    url = f"{PREFIX}/orchestrators/hello_cities/{instance_id}"
    first = await http.post(url, json=["a secret input"])
    await poll_until_ended(http, first.json()["statusQueryGetUri"])

    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as caller:
        answer = await caller.post(
            url,
            params={"ifExists": "useExisting", "timeout": "5", "pollingInterval": "1"},
            json=["Oslo"],
            headers={"x-functions-key": START_KEY},
        )

    assert answer.status_code == 200, answer.text
    assert set(answer.json()) >= {"id", "statusQueryGetUri", "sendEventPostUri"}
    assert "secret" not in answer.text
    assert "runtimeStatus" not in answer.json()


async def test_use_existing_does_not_keep_another_orchestrators_instance(
    http: httpx.AsyncClient,
) -> None:
    instance_id = unique("other-")
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval/{instance_id}", json=60)
    assert started.status_code == 202

    answer = await http.post(
        f"{PREFIX}/orchestrators/hello_cities/{instance_id}", params={"ifExists": "useExisting"}
    )

    assert answer.status_code == 409, answer.text
    assert "runs 'waits_for_approval'" in answer.json()["message"]
    await http.post(f"{PREFIX}/instances/{instance_id}/terminate")
