"""``durable-ops members``: the deployment's orchestrator members and the partitions each
holds, as the leases in Postgres say (ADR 27)."""

from __future__ import annotations

import pytest

from tests.operations.conftest import OpsDeployment

pytestmark = pytest.mark.e2e


async def test_members_lists_the_running_orchestrator_holding_every_partition(
    deployment: OpsDeployment,
) -> None:
    result = await deployment.ops("members", "--json")

    assert result.code == 0, result.stderr
    lines = result.lines()
    members = [line for line in lines if line["kind"] == "member"]
    summary = lines[-1]
    held = sorted(lease["partition"] for m in members for lease in m["leases"])
    assert held == list(range(deployment.settings.partitions))
    assert all(not m["stale"] and m["pid"] > 0 for m in members)
    assert all(
        lease["epoch"] >= 1 and lease["owner"] == m["member_id"]
        for m in members
        for lease in m["leases"]
    )
    assert summary == {
        "kind": "summary",
        "members": len(members),
        "partitions": deployment.settings.partitions,
        "free": [],
        "held_by_unknown": [],
    }


async def test_members_as_text_names_each_member_and_its_partitions(
    deployment: OpsDeployment,
) -> None:
    result = await deployment.ops("members")

    assert result.code == 0, result.stderr
    *member_lines, summary = result.stdout.splitlines()
    assert member_lines
    assert all(" live, heartbeat " in line and " partitions: " in line for line in member_lines)
    assert summary.endswith(f"members, {deployment.settings.partitions} partitions")
