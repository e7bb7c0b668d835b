"""A worker killed while it runs batches of tasks (ADR 17): the broker hands the batches out
again, the restarted worker splits them into single tasks, and every task's result is
recorded once."""

from __future__ import annotations

import aio_pika
import pytest

from contracts import OrchestrationStatus
from tests.conftest import AMQP_URL
from tests.fault.conftest import Deployment

pytestmark = pytest.mark.fault

TASKS = 100  # two batches: 64 and 36 (DF_ACTIVITY_BATCH's default)


async def ready_messages(queue_name: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await connection.close()


async def test_batches_a_killed_worker_held_are_split_and_every_task_is_recorded_once(
    deployment: Deployment,
) -> None:
    instance_id = await deployment.client.start_new(
        "slow_fan_out", input={"count": TASKS, "delay": 3.0}
    )
    await deployment.wait_for_events("TaskScheduled", TASKS)
    queue_name = deployment.topology.activity_queue("slow_echo")

    async def all_taken() -> bool:
        assert await ready_messages(queue_name) == 0, "the batches are not all delivered"
        return True

    await deployment.eventually(all_taken, timeout=30)
    worker = deployment.group["activities"]
    worker.kill()
    assert await deployment.count_events("TaskCompleted") == 0, "tasks ended before the kill"
    worker.start()
    await deployment.wait_ready()

    status = await deployment.client.wait_for_completion(instance_id, timeout=60)
    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == list(range(TASKS))
    assert await deployment.count_events("TaskCompleted") == TASKS
    log = worker.log_tail(400)
    assert log.count("activity.unbatching") == 2, log
