"""``durable-ops check-invariants``: the histories the services write are well formed, and a
history corrupted by hand is named, with the rule it breaks.

Besides the package's workload, this module runs shapes of its own (retries, a child that
fails, a monitor that continues as new on a timer, carried events, a suspension and a resume,
an event timing out, events and terminations sent after the end) and removes
them afterwards, so the other modules' counts stay theirs. Corruptions are made on copies of
real histories, under ids of their own, removed afterwards too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts import EventRaised, ExecutionTerminated, OrchestrationStatus
from tests.conftest import unique
from tests.operations.conftest import OpsDeployment, Workload

pytestmark = pytest.mark.e2e

S = OrchestrationStatus
ENDED = (S.COMPLETED, S.FAILED, S.TERMINATED)


async def forget(pool: asyncpg.Pool, instance_ids: Sequence[str]) -> None:
    """Delete instances (and their children) with everything they stored."""
    async with pool.acquire() as connection, connection.transaction():
        children = await connection.fetch(
            "SELECT instance_id FROM instances WHERE parent_instance_id = ANY($1::text[])",
            list(instance_ids),
        )
        ids = [*instance_ids, *(row["instance_id"] for row in children)]
        for table in ("timers", "events", "instances"):
            await connection.execute(
                f"DELETE FROM {table} WHERE instance_id = ANY($1::text[])", ids
            )


async def send_after_the_end(deployment: OpsDeployment, instance_ids: Sequence[str]) -> None:
    """An event and a termination for each ended instance, straight to its partition (the
    client refuses them), and wait until the orchestrator has dropped them."""
    now = datetime.now(UTC)
    for instance_id in instance_ids:
        status = await deployment.client.get_status(instance_id)
        assert status is not None
        for late in (
            EventRaised(timestamp=now, name="Approval", input="too late"),
            ExecutionTerminated(timestamp=now, reason="too late"),
        ):
            await deployment.client._publish(status, late)
    log = deployment.group.services["orchestrator"].log_path

    async def dropped() -> bool:
        lines = [line for line in log.read_text().splitlines() if "messages.dropped" in line]
        waiting = [i for i in instance_ids if not any(i in line for line in lines)]
        assert waiting == [], waiting
        return True

    await deployment.eventually(dropped)


@pytest.fixture(scope="module")
async def more_shapes(deployment: OpsDeployment, workload: Workload) -> AsyncIterator[list[str]]:
    """Instances of the shapes the workload lacks, every one ended; removed afterwards."""
    c = deployment.client
    ids: list[str] = []
    try:
        ids.append(
            await c.start_new("process_order", input={"order_id": "o1", "fail_payment_attempts": 2})
        )
        ids.append(await c.start_new("process_order", input={"order_id": "o2", "ship": False}))
        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        watch = {"job_id": "job:3", "interval_seconds": 0.2, "expires_at": expires, "checks": 0}
        ids.append(await c.start_new("monitor_job", input=watch))
        ids.append(await c.start_new("waits_for_approval", input=0.5))  # times out
        ids.append(await c.start_new("sleeper", input=0.3))
        carried = await c.start_new("eternal_inbox", input={"keep": True, "seen": []})
        ids.append(carried)
        for item in ("a", "b", "c", "stop"):
            await c.raise_event(carried, "Item", item)
        paused = await c.start_new("waits_for_approval", input=3600)
        ids.append(paused)
        # Not here: a termination that reaches an instance with its start (or with a result)
        # in one batch; the engine then records the calls the code made after the
        # ExecutionTerminated (tests/unit/test_invariants.py, the xfail at the end).
        await deployment.wait_for_status(paused, S.RUNNING)
        await c.suspend(paused, "hold on")
        await deployment.wait_for_status(paused, S.SUSPENDED)
        await c.raise_event(paused, "Approval", "yes")  # kept until it resumes
        await c.resume(paused, "go on")
        for instance_id in ids:
            await deployment.wait_for_status(instance_id, *ENDED)
        await send_after_the_end(deployment, ids)
        yield ids
    finally:
        await forget(deployment.pool, ids)


async def test_every_history_the_services_wrote_is_well_formed(
    deployment: OpsDeployment, workload: Workload, more_shapes: list[str]
) -> None:
    result = await deployment.ops("check-invariants", "--json", "--batch-size", "7")

    assert result.code == 0, result
    *violations, summary = result.lines()
    assert violations == []
    assert summary["violations"] == 0
    instances = await deployment.pool.fetchval("SELECT count(*) FROM instances")
    assert summary["checked"] == instances >= len(workload.all()) + len(more_shapes)

    text = await deployment.ops("check-invariants", "--instance", more_shapes[0])
    assert text.code == 0, text
    assert text.stdout == "1 instances checked: no violations\n"


async def copy_instance(pool: asyncpg.Pool, source: str) -> str:
    """A copy of ``source``'s row and events under a new id."""
    copy = unique("copy-")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO instances (instance_id, name, execution_id, status, input, output,
                custom_status, failure, correlation_id, parent_instance_id, created_at,
                updated_at, completed_at, last_seq, execution_start_seq)
            SELECT $2, name, execution_id, status, input, output, custom_status, failure,
                correlation_id, parent_instance_id, created_at, updated_at, completed_at,
                last_seq, execution_start_seq
            FROM instances WHERE instance_id = $1
            """,
            source,
            copy,
        )
        await connection.execute(
            """
            INSERT INTO events (instance_id, seq, execution_id, event_type, payload)
            SELECT $2, seq, execution_id, event_type, payload FROM events
            WHERE instance_id = $1 ORDER BY seq
            """,
            source,
            copy,
        )
    return copy


async def duplicate_event(pool: asyncpg.Pool, instance_id: str, seq: int) -> None:
    """Store the event at ``seq`` twice: again at ``seq + 1``, the later ones moved up."""
    async with pool.acquire() as connection, connection.transaction():
        # Two steps, so no moved seq meets one not yet moved (the primary key is not deferred).
        await connection.execute(
            "UPDATE events SET seq = -seq WHERE instance_id = $1 AND seq > $2", instance_id, seq
        )
        await connection.execute(
            "UPDATE events SET seq = 1 - seq WHERE instance_id = $1 AND seq < 0", instance_id
        )
        await connection.execute(
            """
            INSERT INTO events (instance_id, seq, execution_id, event_type, payload)
            SELECT instance_id, seq + 1, execution_id, event_type, payload FROM events
            WHERE instance_id = $1 AND seq = $2
            """,
            instance_id,
            seq,
        )
        await connection.execute(
            "UPDATE instances SET last_seq = last_seq + 1 WHERE instance_id = $1", instance_id
        )


async def test_each_corruption_is_named_with_its_instance_and_rule(
    deployment: OpsDeployment, workload: Workload
) -> None:
    pool, chain = deployment.pool, workload.ids["chain"][0]  # hello_cities: three activities
    seq_of = """
        SELECT seq FROM events WHERE instance_id = $1 AND event_type = $2 ORDER BY seq LIMIT 1
    """
    copies: dict[str, str] = {}
    try:
        deleted = copies["seq-contiguous"] = await copy_instance(pool, chain)
        schedule = await pool.fetchval(seq_of, deleted, "TaskScheduled")
        await pool.execute(
            "DELETE FROM events WHERE instance_id = $1 AND seq = $2", deleted, schedule
        )

        doubled = copies["task-once"] = await copy_instance(pool, chain)
        answer = await pool.fetchval(seq_of, doubled, "TaskCompleted")
        await duplicate_event(pool, doubled, answer)

        status = copies["row-matches-events"] = await copy_instance(pool, chain)
        await pool.execute("UPDATE instances SET status = 'Running' WHERE instance_id = $1", status)

        late = copies["nothing-after-end"] = await copy_instance(pool, chain)
        await pool.execute(
            """
            INSERT INTO events (instance_id, seq, execution_id, event_type, payload)
            SELECT instance_id, last_seq + 1, execution_id, 'EventRaised',
                   '{"event_type": "EventRaised", "timestamp": "2026-01-01T00:00:00Z",
                     "name": "Late"}'
            FROM instances WHERE instance_id = $1
            """,
            late,
        )
        await pool.execute(
            "UPDATE instances SET last_seq = last_seq + 1 WHERE instance_id = $1", late
        )

        arguments = [argument for copy in copies.values() for argument in ("--instance", copy)]
        result = await deployment.ops("check-invariants", "--json", *arguments)

        assert result.code == 1, result
        *violations, summary = result.lines()
        named = {(line["instance_id"], line["rule"]) for line in violations}
        for rule, copy in copies.items():
            assert (copy, rule) in named, (rule, violations)
        assert {line["instance_id"] for line in violations} == set(copies.values())
        assert summary["checked"] == len(copies)
        assert summary["instances_with_violations"] == len(copies)

        text = await deployment.ops("check-invariants", "--instance", status)
        assert text.code == 1
        assert f"VIOLATION  {status}  row-matches-events  execution " in text.stdout
        assert "status is Running, the events say Completed" in text.stdout
        assert text.stdout.splitlines()[-1] == (
            "1 instances checked: 1 violations in 1 instances (row-matches-events 1)"
        )
    finally:
        await forget(pool, list(copies.values()))


async def test_an_instance_that_does_not_exist_needs_attention_and_bad_options_are_usage(
    deployment: OpsDeployment,
) -> None:
    missing = await deployment.ops("check-invariants", "--instance", "no-such-instance")
    assert missing.code == 1, missing
    assert "0 instances checked: no violations; 1 not found: no-such-instance" in missing.stdout

    bad = await deployment.ops("check-invariants", "--status", "Sleeping")
    assert bad.code == 2, bad
    assert bad.stderr.startswith("error: unknown status 'Sleeping'")
