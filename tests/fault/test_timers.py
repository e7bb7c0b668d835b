"""Durable timers on the real services: the delay cascade, and the sweeper when it loses fires."""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import subprocess
import time
import uuid
from datetime import datetime

import aio_pika
import pytest

from contracts import OrchestrationStatus
from contracts.topology import DELAY_LEVELS
from services.orchestrator.dispatch import ARRIVE_EARLY_SECONDS
from tests.conftest import AMQP_URL
from tests.fault.conftest import Deployment
from tests.helpers import approval
from workflows.approval.messages import APPROVAL_ORCHESTRATOR

pytestmark = pytest.mark.fault

# What the tests hold the runtime to. The cascade delivers fires early and the orchestrator
# releases them at their due time, so a fire is late only by the time the orchestrator needs to
# get to it: milliseconds when idle, up to about a second here while it is also absorbing the
# burst of a thousand starts (see docs/timers.md). The bound leaves room for a loaded machine.
MAX_LATENESS_SECONDS = 2.0


def lateness(output: dict[str, str]) -> float:
    return (
        datetime.fromisoformat(output["resumed"]) - datetime.fromisoformat(output["due"])
    ).total_seconds()


async def start_all(deployment: Deployment, name: str, inputs: list[object]) -> list[str]:
    ids: list[str] = []
    for chunk in range(0, len(inputs), 100):
        ids += await asyncio.gather(
            *(deployment.client.start_new(name, input=i) for i in inputs[chunk : chunk + 100])
        )
    return ids


async def timer_fires(deployment: Deployment, instance_ids: list[str]) -> dict[str, int]:
    rows = await deployment.pool.fetch(
        """
        SELECT instance_id, count(*) FILTER (WHERE event_type = 'TimerFired') AS fires
        FROM events WHERE instance_id = ANY($1::text[]) GROUP BY instance_id
        """,
        instance_ids,
    )
    return {row["instance_id"]: row["fires"] for row in rows}


async def wait_until_ended(deployment: Deployment, instance_ids: list[str], timeout: float) -> None:
    async def ended() -> bool:
        count = await deployment.pool.fetchval(
            "SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) "
            "AND status = ANY($2::text[])",
            instance_ids,
            [s.value for s in OrchestrationStatus if s.is_terminal],
        )
        assert count == len(instance_ids), f"{count} of {len(instance_ids)} ended"
        return True

    await deployment.eventually(ended, timeout=timeout, interval=0.2)


async def wait_for_timer_rows(deployment: Deployment, count: int) -> None:
    async def created() -> bool:
        rows = await deployment.pool.fetchval("SELECT count(*) FROM timers")
        assert rows >= count, f"{rows} of {count} timers created"
        return True

    await deployment.eventually(created, timeout=30)


async def test_a_thousand_mixed_timers_fire_once_none_early_none_held_up_by_longer_ones(
    deployment: Deployment,
) -> None:
    # Long timers first, so any head-of-line blocking would hold up the short ones behind them.
    # The short ones: most due within the cascade's margin (held by the orchestrator from the
    # start), a tenth long enough to pass through the cascade (ARRIVE_EARLY_SECONDS + 1..5 s).
    long_ids = await start_all(deployment, "sleeper", [3600] * 20)
    generator = random.Random(7)
    delays = [round(generator.uniform(1, 8), 3) for _ in range(900)]
    delays += [
        round(generator.uniform(ARRIVE_EARLY_SECONDS + 1, ARRIVE_EARLY_SECONDS + 5), 3)
        for _ in range(100)
    ]
    short_ids = await start_all(deployment, "sleeper", delays)

    await wait_until_ended(deployment, short_ids, timeout=ARRIVE_EARLY_SECONDS + 60)

    statuses = [await deployment.client.get_status(i) for i in short_ids]
    assert all(s and s.runtime_status is OrchestrationStatus.COMPLETED for s in statuses)
    late = sorted(lateness(s.output) for s in statuses if s)
    assert late[0] >= 0, f"a timer fired {-late[0]:.3f} s early"
    assert late[-1] <= MAX_LATENESS_SECONDS, f"lateness max {late[-1]:.3f} s"
    print(
        f"lateness of 1,000 timers: p50 {statistics.median(late) * 1000:.1f} ms, "
        f"p99 {late[989] * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms"
    )
    fires = await timer_fires(deployment, short_ids + long_ids)
    assert all(fires[i] == 1 for i in short_ids), "a timer fired more than once"
    assert all(fires[i] == 0 for i in long_ids), "an hour-long timer fired already"
    assert await deployment.pool.fetchval("SELECT count(*) FROM timers") == len(long_ids)


async def purge_delay_queues(deployment: Deployment) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        purged = 0
        for level in range(DELAY_LEVELS):
            name = deployment.topology.delay_level_name(level)
            queue = await channel.get_queue(name, ensure=False)
            result = await queue.purge()
            purged += result.message_count or 0
        return purged
    finally:
        await connection.close()


async def test_sweeper_fires_timers_whose_delayed_messages_were_purged(
    deployment: Deployment,
) -> None:
    # Long enough to be in the cascade (fires due within dispatch.ARRIVE_EARLY_SECONDS are
    # held by the orchestrator at once and never enter it).
    instance_ids = await start_all(deployment, "sleeper", [ARRIVE_EARLY_SECONDS + 4] * 50)
    await wait_for_timer_rows(deployment, 50)

    purged = await purge_delay_queues(deployment)

    assert purged >= 1, "nothing was waiting in the cascade"
    await wait_until_ended(deployment, instance_ids, timeout=ARRIVE_EARLY_SECONDS + 60)
    statuses = [await deployment.client.get_status(i) for i in instance_ids]
    assert all(s and s.runtime_status is OrchestrationStatus.COMPLETED for s in statuses)
    assert all(lateness(s.output) >= 0 for s in statuses if s)
    fires = await timer_fires(deployment, instance_ids)
    assert set(fires.values()) == {1}
    assert "timers.swept" in deployment.group["orchestrator"].log_tail(200)


def restart_broker() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(
        ["rabbitmqctl", "await_startup", "--timeout", "120"],
        check=True,
        capture_output=True,
        timeout=150,
    )


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs a local RabbitMQ to restart")
async def test_approval_deadlines_fire_after_an_orchestrator_kill_and_a_broker_restart(
    deployment: Deployment,
) -> None:
    proposals = [approval.proposal(f"restart-{n}-{uuid.uuid4().hex[:6]}") for n in range(30)]
    instance_ids = await asyncio.gather(
        *(
            deployment.client.start_new(
                APPROVAL_ORCHESTRATOR, p.proposal_id, p.model_dump(mode="json")
            )
            for p in proposals
        )
    )
    await wait_for_timer_rows(deployment, len(instance_ids))

    outage_started = time.monotonic()
    deployment.group["orchestrator"].kill()
    await asyncio.to_thread(restart_broker)
    deployment.group["orchestrator"].start()
    await deployment.wait_ready()
    outage = time.monotonic() - outage_started

    await wait_until_ended(deployment, instance_ids, timeout=90)
    records = [(await deployment.client.get_status(i)) for i in instance_ids]
    assert all(r and r.output and r.output["outcome"] == "auto_rejected" for r in records)
    # Every deadline fired: each level's request, reminder and reassignment happened, and no
    # deadline was later than the outage plus the sweeper's grace period (2 s) and a margin.
    for record in records:
        assert record is not None
        escalations = record.output["escalations"]
        assert [e["kind"] for e in escalations] == ["reminder", "reassignment", "reminder"]
        for escalation in escalations:
            late = datetime.fromisoformat(escalation["at"]) - datetime.fromisoformat(
                escalation["missed_deadline"]
            )
            assert late.total_seconds() <= outage + 2 + 3, (late, outage)
    completions = await deployment.pool.fetch(
        "SELECT instance_id, count(*) AS n FROM events WHERE instance_id = ANY($1::text[]) "
        "AND event_type IN ('ExecutionCompleted', 'ExecutionFailed', 'ExecutionTerminated') "
        "GROUP BY instance_id",
        list(instance_ids),
    )
    assert len(completions) == len(instance_ids)
    assert {row["n"] for row in completions} == {1}
