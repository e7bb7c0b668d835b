"""The ``durable`` CLI as a subprocess, against the session's database, broker and services."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import free_port, unique
from tests.helpers.cli import assert_one_line_error, cli_runner
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def durable(services: ServiceGroup, settings: CommonSettings):
    """Run ``python -m services.client.cli ARGS`` with the session's ``DF_*`` settings."""
    return cli_runner(settings)


async def wait_until(client: DurableClient, instance_id: str, status: OrchestrationStatus) -> None:
    async def reached() -> bool:
        found = await client.get_status(instance_id)
        assert found is not None
        assert found.runtime_status is status
        return True

    await assert_eventually(reached, timeout=30)


async def test_start_with_wait_prints_the_outcome(durable) -> None:
    result = await durable(
        "start", "hello_cities", "--input", '["Oslo", "Lima"]', "--wait", "30", "--json"
    )

    assert result.code == 0, result
    body = result.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Oslo!", "Hello Lima!"]


async def test_status_prints_the_instance_and_its_history(durable, client: DurableClient) -> None:
    started = await durable("start", "hello_cities", "--input", '["Oslo"]')
    instance_id = started.stdout.strip()
    await client.wait_for_completion(instance_id, timeout=30)

    text = await durable("status", instance_id, "--history")
    as_json = await durable("status", instance_id, "--history", "--json")

    assert started.code == 0, started
    assert text.code == 0, text
    assert f"instance  {instance_id}" in text.stdout
    assert "version   -" in text.stdout  # the session's orchestrator has no DF_APP_VERSION
    assert "status    Completed" in text.stdout
    assert 'output    ["Hello Oslo!"]' in text.stdout
    assert "ExecutionStarted" in text.stdout
    assert 'name="say_hello"' in text.stdout
    body = as_json.json()
    assert body["instanceId"] == instance_id
    assert [e["event_type"] for e in body["history"]][:2] == [
        "OrchestratorStarted",
        "ExecutionStarted",
    ]
    assert [e["seq"] for e in body["history"]] == list(range(1, len(body["history"]) + 1))


async def test_list_filters_and_pages(durable, client: DurableClient) -> None:
    prefix = unique("cli-list-")
    for n in range(3):
        await client.start_new("hello_cities", f"{prefix}-{n}", [])

    text = await durable("list", "--prefix", prefix)
    first = await durable("list", "--prefix", prefix, "--top", "2", "--json")
    token = first.json()["continuationToken"]
    second = await durable(
        "list", "--prefix", prefix, "--top", "2", "--continuation", token, "--json"
    )
    filtered = await durable("list", "--prefix", prefix, "--status", "Failed,Terminated", "--json")

    assert text.code == 0, text
    assert text.stdout.splitlines()[0].split() == [
        "INSTANCE",
        "NAME",
        "VERSION",
        "STATUS",
        "CREATED",
        "UPDATED",
    ]
    assert len(text.stdout.splitlines()) == 4
    assert [i["instanceId"] for i in first.json()["instances"]] == [f"{prefix}-0", f"{prefix}-1"]
    assert [i["instanceId"] for i in second.json()["instances"]] == [f"{prefix}-2"]
    assert second.json()["continuationToken"] is None
    assert filtered.json()["instances"] == []


async def test_status_and_list_show_the_version_an_instance_runs_under(
    durable, client: DurableClient
) -> None:
    prefix = unique("cli-version-")
    await client.start_new("reports_version", f"{prefix}-old", version="1.0")
    await client.start_new("reports_version", f"{prefix}-new", version="2.0")
    await client.wait_for_completion(f"{prefix}-new", timeout=30)

    status = await durable("status", f"{prefix}-new")
    as_json = await durable("status", f"{prefix}-new", "--json")
    listed = await durable("list", "--prefix", prefix)

    assert "version   2.0" in status.stdout.splitlines()
    assert 'output    "2.0"' in status.stdout
    assert as_json.json()["version"] == "2.0"
    rows = [line.split()[:3] for line in listed.stdout.splitlines()[1:]]
    assert rows == [
        [f"{prefix}-old", "reports_version", "1.0"],
        [f"{prefix}-new", "reports_version", "2.0"],
    ]


async def test_list_by_name_and_custom_status_with_a_count(durable, client: DurableClient) -> None:
    prefix = unique("cli-query-")
    for n, cities in enumerate([["Oslo"], ["Lima"], ["Oslo", "Lima"]]):
        await client.start_new("hello_cities", f"{prefix}-{n}", cities)
        await client.wait_for_completion(f"{prefix}-{n}", timeout=30)

    lima = await durable(
        "list", "--prefix", prefix, "--name", "hello_cities",
        "--custom-status", '{"greeting": "Lima"}', "--top", "1", "--count", "--json",
    )  # fmt: skip
    text = await durable("list", "--prefix", prefix, "--count")
    bad = await durable("list", "--custom-status", "{lima}")

    assert lima.code == 0, lima
    assert [i["instanceId"] for i in lima.json()["instances"]] == [f"{prefix}-1"]
    assert lima.json()["totalCount"] == 2
    assert text.stdout.strip().endswith("3 matching in all")
    assert_one_line_error(bad, 2, "--custom-status")


async def test_start_on_an_id_in_use_follows_the_policy(durable, client: DurableClient) -> None:
    instance_id = unique("cli-policy-")
    await client.start_new("hello_cities", instance_id, ["Oslo"])
    first = await client.wait_for_completion(instance_id, timeout=30)

    refused = await durable("start", "hello_cities", "--id", instance_id, DF_START_EXISTING="error")
    replaced = await durable(
        "start", "hello_cities", "--id", instance_id, "--if-exists", "replace_ended",
        "--input", '["Lima"]', "--wait", "30", "--json", DF_START_EXISTING="error",
    )  # fmt: skip
    by_setting = await durable(
        "start", "hello_cities", "--id", instance_id, "--wait", "30", "--json",
        DF_START_EXISTING="replace_ended",
    )  # fmt: skip

    assert_one_line_error(refused, 1, "already exists", "Completed")
    assert replaced.code == 0, replaced
    assert replaced.json()["output"] == ["Hello Lima!"]
    assert by_setting.code == 0, by_setting
    last = await client.get_status(instance_id)
    assert last is not None
    assert last.execution_id != first.execution_id


async def test_the_approval_flow_from_the_command_line(durable, client: DurableClient) -> None:
    instance_id = unique("cli-approval-")
    started = await durable("start", "waits_for_approval", "--id", instance_id, "--input", "60")
    await wait_until(client, instance_id, OrchestrationStatus.RUNNING)

    raised = await durable("raise-event", instance_id, "Approval", "--data", '{"approved": true}')
    waited = await durable("wait", instance_id, "--timeout", "30", "--json")

    assert started.stdout.strip() == instance_id
    assert raised.code == 0, raised
    assert "Approval" in raised.stdout
    assert waited.code == 0, waited
    assert waited.json()["output"] == {"answer": {"approved": True}}


async def test_suspend_resume_and_terminate(durable, client: DurableClient) -> None:
    instance_id = unique("cli-ops-")
    await client.start_new("waits_for_approval", instance_id, 60)
    await wait_until(client, instance_id, OrchestrationStatus.RUNNING)

    suspended = await durable("suspend", instance_id, "--reason", "audit")
    await wait_until(client, instance_id, OrchestrationStatus.SUSPENDED)
    resumed = await durable("resume", instance_id)
    await wait_until(client, instance_id, OrchestrationStatus.RUNNING)
    terminated = await durable("terminate", instance_id, "--reason", "not needed", "--json")
    ended = await client.wait_for_completion(instance_id, timeout=30)
    again = await durable("terminate", instance_id)

    assert (suspended.code, resumed.code, terminated.code) == (0, 0, 0)
    assert terminated.json() == {"id": instance_id, "requested": "terminate"}
    assert (ended.runtime_status, ended.output) == (OrchestrationStatus.TERMINATED, "not needed")
    assert_one_line_error(again, 1, instance_id, "has ended")


async def test_purge_refuses_running_instances_and_deletes_ended_ones(
    durable, client: DurableClient
) -> None:
    instance_id = unique("cli-purge-")
    await client.start_new("waits_for_approval", instance_id, 60)

    while_running = await durable("purge", instance_id)
    await client.terminate(instance_id, "stop")
    await client.wait_for_completion(instance_id, timeout=30)
    purged = await durable("purge", instance_id, "--json")
    again = await durable("purge", instance_id)

    assert_one_line_error(while_running, 1, instance_id)
    assert purged.code == 0, purged
    assert purged.json() == {"instancesDeleted": 1}
    assert await client.get_status(instance_id) is None
    assert_one_line_error(again, 1, "no instance")


async def test_purge_by_deletes_ended_instances_in_the_range(
    durable, client: DurableClient
) -> None:
    done = unique("cli-purge-by-")
    await client.start_new("hello_cities", done, [])
    since = (await client.wait_for_completion(done, timeout=30)).created_at.isoformat()

    result = await durable("purge-by", "--from", since, "--status", "Completed")

    assert result.code == 0, result
    assert result.stdout.strip() == "purged 1 instance(s)"
    assert await client.get_status(done) is None


async def test_wait_exit_codes_tell_timed_out_from_failed(durable, client: DurableClient) -> None:
    waiting = unique("cli-wait-")
    await client.start_new("waits_for_approval", waiting, 60)
    failing = await client.start_new("failing_orchestrator", None, 1)
    await client.wait_for_completion(failing, timeout=30)

    timed_out = await durable("wait", waiting, "--timeout", "0.2")
    failed = await durable("wait", failing)

    assert_one_line_error(timed_out, 4, waiting, "still")
    assert failed.code == 1, failed
    assert "status    Failed" in failed.stdout
    await client.terminate(waiting, "test done")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["status", "no-such-instance"], 1, "no instance 'no-such-instance'"),
        (["raise-event", "no-such-instance", "Approval"], 1, "no instance"),
        (["start", "no_such_orchestrator"], 2, "no orchestrator named 'no_such_orchestrator'"),
        (["start", "hello_cities", "--input", "{oops"], 2, "--input is not valid JSON"),
        (["list", "--from", "yesterday"], 2, "--from 'yesterday' is not an ISO 8601 time"),
        (["list", "--status", "Sleeping"], 2, "'Sleeping' is not one of"),
        (["list", "--continuation", "garbage"], 2, "continuation token"),
    ],
)
async def test_bad_arguments_and_unknown_instances_are_one_line_errors(
    durable, args: list[str], code: int, fragment: str
) -> None:
    result = await durable(*args)

    assert_one_line_error(result, code, fragment)


async def test_an_unreachable_database_or_broker_is_a_one_line_error(durable) -> None:
    no_database = await durable(
        "status", "x", DF_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/df"
    )
    broker_down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    # A start is committed with its message in the outbox, so it succeeds without the broker
    # (the orchestrator's sweeper publishes it later); raising an event needs the broker.
    started = await durable("start", "hello_cities", DF_AMQP_URL=broker_down)
    instance_id = started.stdout.strip()
    no_broker = await durable("raise-event", instance_id, "Go", DF_AMQP_URL=broker_down)
    # Reading needs no broker.
    read_without_broker = await durable("status", instance_id, DF_AMQP_URL=broker_down)

    assert_one_line_error(no_database, 3, "cannot reach the database")
    assert started.code == 0, started
    assert_one_line_error(no_broker, 3, "cannot reach the broker")
    assert read_without_broker.code == 0, read_without_broker
    assert instance_id in read_without_broker.stdout


async def test_values_and_ids_that_cannot_be_stored_are_refused_in_one_line(durable) -> None:
    too_long = await durable("start", "hello_cities", "--id", "x" * 300)
    assert_one_line_error(too_long, 2, "the instance id cannot be stored", "300 bytes")

    nul = await durable("start", "hello_cities", "--input", '"a\\u0000"')
    assert_one_line_error(nul, 2, "the orchestration input cannot be stored", "U+0000")

    not_json = await durable("start", "hello_cities", "--input", "NaN")
    assert_one_line_error(not_json, 2, "the orchestration input is not JSON-serializable")


async def test_start_keeps_an_existing_instance_with_use_existing(
    durable, client: DurableClient
) -> None:
    instance_id = unique("cli-once-")
    first = await durable("start", "hello_cities", "--id", instance_id, "--wait", "30")
    assert first.code == 0, first

    again = await durable(
        "start", "hello_cities", "--id", instance_id, "--if-exists", "use_existing"
    )

    assert again.code == 0, again
    assert again.stdout.strip() == instance_id
    history = await client.get_history(instance_id)
    assert [e.event.event_type for e in history].count("ExecutionStarted") == 1
