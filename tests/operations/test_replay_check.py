"""``durable-ops replay-check``: stored histories against the current orchestrator code."""

from __future__ import annotations

import pytest

from tests.operations.conftest import OpsDeployment, Workload

pytestmark = pytest.mark.e2e

EVERY_STATUS = "Running,Suspended,Completed,Failed,Terminated"


async def count_events(deployment: OpsDeployment) -> int:
    return int(await deployment.pool.fetchval("SELECT count(*) FROM events"))


async def test_the_workload_histories_replay_through_the_deployed_code(
    deployment: OpsDeployment, workload: Workload
) -> None:
    events = await count_events(deployment)

    result = await deployment.ops("replay-check", "--status", EVERY_STATUS, "--json")

    assert result.code == 0, result
    *instances, summary = result.lines()
    assert {line["instance_id"] for line in instances} >= set(workload.all())
    assert [line for line in instances if not line["matches"]] == []
    assert summary["mismatched"] == 0
    assert await count_events(deployment) == events  # replaying recorded nothing

    # The default: every Running or Suspended instance; a sample of them.
    default = await deployment.ops("replay-check", "--json")
    assert default.code == 0, default
    running = {line["instance_id"] for line in default.lines() if line["kind"] == "instance"}
    assert running >= {*workload.ids["waiting"], *workload.ids["suspended"]}
    sampled = await deployment.ops("replay-check", "--sample", "1", "--json")
    assert sampled.code == 0, sampled
    assert sampled.lines()[-1]["checked"] == 1


async def test_the_check_fails_naming_the_event_when_an_orchestrator_calls_another_activity(
    deployment: OpsDeployment, workload: Workload
) -> None:
    changed = {"DF_FUNCTION_MODULES": "tests.operations.changed_apps"}

    result = await deployment.ops("replay-check", "--name", "echo_then_wait", "--json", **changed)

    assert result.code == 1, result
    *instances, summary = result.lines()
    assert {line["instance_id"] for line in instances} == set(workload.ids["waiting"])
    for line in instances:
        assert line["matches"] is False
        assert line["mismatch"]["event_id"] == 0
        assert line["mismatch"]["history"] == "TaskScheduled #0 call_activity('echo')"
        assert line["mismatch"]["code"] == "call_activity('say_hello')"
    assert summary["mismatched"] == len(workload.ids["waiting"])

    text = await deployment.ops("replay-check", "--name", "echo_then_wait", **changed)
    assert text.code == 1
    first = workload.ids["waiting"][0]
    assert (
        f"MISMATCH  {first}  echo_then_wait: at event #0 (seq 3) the history holds "
        "TaskScheduled #0 call_activity('echo'); the code now asks for "
        "call_activity('say_hello')"
    ) in text.stdout
