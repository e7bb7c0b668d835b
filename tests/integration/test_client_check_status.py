"""``DurableClient.wait_for_completion_or_create_check_status_response``: the outcome when
the instance ends in time, else Durable Functions' check-status answer, as plain values."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts import FailureDetails, OrchestrationStatus
from durable.client import DurableClient, InstanceNotFoundError
from durable.client.payloads import PREFIX
from tests.conftest import unique
from tests.integration.read_model import set_state

BASE_URL = "https://api.example"


async def test_a_running_instance_gets_the_check_status_payload_after_the_timeout(
    private_client: DurableClient,
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("wait-"))

    answer = await private_client.wait_for_completion_or_create_check_status_response(
        instance_id, BASE_URL + "/", timeout=0.3, retry_interval=0.1, access_key="k-1"
    )

    url = f"{BASE_URL}{PREFIX}/instances/{instance_id}"
    assert answer.status_code == 202
    assert not answer.ended
    assert answer.status.runtime_status is OrchestrationStatus.PENDING
    assert answer.body["statusQueryGetUri"] == f"{url}?code=k-1"
    assert answer.body["sendEventPostUri"] == f"{url}/raiseEvent/{{eventName}}?code=k-1"
    assert answer.headers == {"Location": f"{url}?code=k-1", "Retry-After": "10"}


async def test_a_completed_instance_gets_its_output(
    private_client: DurableClient, pool: asyncpg.Pool
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("wait-"))
    await set_state(pool, instance_id, OrchestrationStatus.COMPLETED, output=["Hello Oslo!"])

    answer = await private_client.wait_for_completion_or_create_check_status_response(
        instance_id, BASE_URL
    )

    assert (answer.status_code, answer.body, answer.headers) == (200, ["Hello Oslo!"], {})
    assert answer.ended


@pytest.mark.parametrize(
    ("status", "fail_with_500", "code"),
    [
        (OrchestrationStatus.FAILED, False, 200),
        (OrchestrationStatus.FAILED, True, 500),
        (OrchestrationStatus.TERMINATED, True, 200),
    ],
)
async def test_a_failed_or_terminated_instance_gets_its_status(
    private_client: DurableClient,
    pool: asyncpg.Pool,
    status: OrchestrationStatus,
    fail_with_500: bool,
    code: int,
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("wait-"))
    failure = FailureDetails(error_type="ValueError", message="no cities", stack_trace=None)
    await set_state(
        pool,
        instance_id,
        status,
        output="stopped" if status is OrchestrationStatus.TERMINATED else None,
        failure=failure if status is OrchestrationStatus.FAILED else None,
    )

    answer = await private_client.wait_for_completion_or_create_check_status_response(
        instance_id, BASE_URL, return_internal_server_error_on_failure=fail_with_500
    )

    assert answer.status_code == code
    assert answer.body["runtimeStatus"] == status.value
    assert answer.body["instanceId"] == instance_id


async def test_it_waits_for_an_instance_that_ends_during_the_wait(
    private_client: DurableClient, pool: asyncpg.Pool
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("wait-"))

    async def end_during_the_wait() -> None:
        await asyncio.sleep(0.2)
        await set_state(pool, instance_id, OrchestrationStatus.COMPLETED, output="done")

    answer, _ = await asyncio.gather(
        private_client.wait_for_completion_or_create_check_status_response(
            instance_id, BASE_URL, timeout=10, retry_interval=0.05
        ),
        end_during_the_wait(),
    )

    assert (answer.status_code, answer.body) == (200, "done")


async def test_bad_arguments_and_unknown_instances_are_refused(
    private_client: DurableClient,
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("wait-"))

    with pytest.raises(ValueError, match="retry interval"):
        await private_client.wait_for_completion_or_create_check_status_response(
            instance_id, BASE_URL, timeout=1, retry_interval=2
        )
    with pytest.raises(InstanceNotFoundError):
        await private_client.wait_for_completion_or_create_check_status_response(
            unique("nobody-"), BASE_URL
        )
