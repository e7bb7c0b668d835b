"""``durable-ops rebuild-projections``: the instances read model, rebuilt from the events."""

from __future__ import annotations

import asyncio

import pytest

from contracts import OrchestrationStatus
from tests.operations.conftest import OpsDeployment, Workload

pytestmark = pytest.mark.e2e

ROWS = """
    SELECT instance_id, name, execution_id, status, input::text, output::text,
           custom_status::text, failure::text, correlation_id, parent_instance_id, created_at,
           updated_at, completed_at, last_seq, execution_start_seq, version
    FROM instances ORDER BY instance_id
"""


async def read_model(deployment: OpsDeployment) -> list[dict]:
    return [dict(row) for row in await deployment.pool.fetch(ROWS)]


def reported(lines: list[dict]) -> dict[str, set[str]]:
    return {
        line["instance_id"]: set(line["differences"])
        for line in lines
        if line["kind"] == "instance" and line["differences"]
    }


async def test_a_rebuild_reproduces_the_live_read_model_after_a_mixed_workload(
    deployment: OpsDeployment, workload: Workload
) -> None:
    before = await read_model(deployment)

    checked = await deployment.ops("rebuild-projections", "--json", "--batch-size", "7")
    assert checked.code == 0, checked
    *rows, summary = checked.lines()
    assert reported(rows) == {}
    assert summary["checked"] == len(before)
    assert summary["differing"] == 0
    assert summary["skipped"] == {}
    # Continue-as-new dropped the first execution: its created_at exists in no event.
    assert summary["kept"] == {"created_at": len(workload.ids["continued"])}

    applied = await deployment.ops("rebuild-projections", "--apply", "--json")
    assert applied.code == 0, applied
    assert applied.lines()[-1]["repaired"] == 0
    assert await read_model(deployment) == before


async def test_the_rebuild_reports_and_repairs_exactly_the_rows_corrupted_by_hand(
    deployment: OpsDeployment, workload: Workload
) -> None:
    ids = workload.ids
    corruptions = {
        ids["chain"][0]: ("status = 'Running'", {"status"}),
        ids["fan_out"][0]: ("output = '12345'", {"output"}),
        ids["waiting"][0]: ('custom_status = \'{"stage": "bogus"}\'', {"custom_status"}),
        ids["approval"][1]: (
            "last_seq = last_seq - 2, updated_at = updated_at - interval '1 hour'",
            {"last_seq", "updated_at"},
        ),
        ids["terminated"][0]: ("completed_at = NULL", {"completed_at"}),
        ids["continued"][0]: (
            "execution_start_seq = 1, input = '{\"seen\": []}'",
            {"execution_start_seq", "input"},
        ),
        ids["failed"][0]: ("failure = NULL", {"failure"}),
        ids["rewound"][0]: ("execution_id = 'not-the-current-one'", {"execution_id"}),
        ids["versioned"][0]: ("version = NULL", {"version"}),
    }
    healthy = await read_model(deployment)
    for instance_id, (assignments, _) in corruptions.items():
        await deployment.pool.execute(
            f"UPDATE instances SET {assignments} WHERE instance_id = $1", instance_id
        )
    expected = {instance_id: fields for instance_id, (_, fields) in corruptions.items()}

    report = await deployment.ops("rebuild-projections", "--json", "--batch-size", "5")
    assert report.code == 1, report
    assert reported(report.lines()) == expected
    text = await deployment.ops("rebuild-projections")
    assert text.code == 1
    assert f'differs   {ids["chain"][0]}  status: "Running" → "Completed"' in text.stdout

    # Repair while the system keeps working: instances started now are written concurrently.
    busy = [deployment.client.start_new("fan_out_fan_in", input=20) for _ in range(10)]
    started, repair = await asyncio.gather(
        asyncio.gather(*busy),
        deployment.ops("rebuild-projections", "--apply", "--json", "--batch-size", "5"),
    )
    assert repair.code == 0, repair
    repaired = [line for line in repair.lines() if line["kind"] == "instance"]
    assert reported(repaired) == expected
    assert all(line["repaired"] for line in repaired if line["differences"])

    assert [row for row in await read_model(deployment) if row["instance_id"] not in started] == (
        healthy
    )
    for instance_id in started:
        await deployment.wait_for_status(instance_id, OrchestrationStatus.COMPLETED)
    again = await deployment.ops("rebuild-projections", "--json")
    assert again.code == 0, again
    assert reported(again.lines()) == {}
