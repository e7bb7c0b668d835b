"""``DurableClient.wait_for_completion_or_create_check_status_response`` on the real services:
the outcome of an instance that ends in time, else links (carrying the key) that work."""

from __future__ import annotations

import httpx
import pytest

from durable.client import DurableClient
from tests.conftest import START_KEY
from tests.helpers.http import poll_until_ended

pytestmark = pytest.mark.e2e


async def test_an_instance_that_ends_in_time_answers_with_its_output(
    client: DurableClient, base_url: str
) -> None:
    instance_id = await client.start_new("hello_cities", input=["Oslo", "Lima"])

    answer = await client.wait_for_completion_or_create_check_status_response(
        instance_id, base_url, timeout=30, retry_interval=0.1
    )

    assert (answer.status_code, answer.body) == (200, ["Hello Oslo!", "Hello Lima!"])
    assert answer.ended


async def test_a_running_instance_answers_with_links_that_carry_the_key(
    client: DurableClient, base_url: str, http: httpx.AsyncClient
) -> None:
    instance_id = await client.start_new("waits_for_approval", input=60)

    answer = await client.wait_for_completion_or_create_check_status_response(
        instance_id, base_url, timeout=0.3, retry_interval=0.1, access_key=START_KEY
    )

    assert answer.status_code == 202
    assert answer.headers["Location"] == answer.body["statusQueryGetUri"]
    async with httpx.AsyncClient(timeout=10.0) as anyone:
        event_url = answer.body["sendEventPostUri"].replace("{eventName}", "Approval")
        raised = await anyone.post(event_url, json={"approved": True})
        refused = await anyone.get(answer.body["statusQueryGetUri"])
    assert raised.status_code == 202, raised.text
    assert refused.status_code == 401  # a start key's links open only its events
    done = await poll_until_ended(http, answer.body["statusQueryGetUri"].split("?")[0])
    assert done.json()["output"] == {"answer": {"approved": True}}
