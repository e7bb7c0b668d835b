"""The orchestrator service as several processes (ADR 15): each partition consumed by one of
them, and the service failing as a whole."""

from __future__ import annotations

import asyncio
import os
import signal

import aio_pika
import psutil

from contracts import OrchestrationStatus
from tests.conftest import AMQP_URL
from tests.fault.conftest import Deployment


def processes_of(deployment: Deployment) -> tuple[psutil.Process, list[psutil.Process]]:
    process = deployment.group["orchestrator"].process
    assert process is not None
    supervisor = psutil.Process(process.pid)
    return supervisor, supervisor.children()


async def consumers_per_partition(deployment: Deployment) -> list[int]:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        counts = []
        for partition in range(deployment.topology.partitions):
            queue = await channel.declare_queue(
                deployment.topology.partition_queue(partition), passive=True
            )
            counts.append(queue.declaration_result.consumer_count)
        return counts
    finally:
        await connection.close()


async def test_two_processes_share_the_partitions_and_run_orchestrations(
    deployment: Deployment,
) -> None:
    supervisor, children = processes_of(deployment)
    instance_ids = await asyncio.gather(
        *(deployment.client.start_new("hello_cities") for _ in range(20))
    )

    assert len(children) == 2
    assert await consumers_per_partition(deployment) == [1] * deployment.topology.partitions
    for instance_id in instance_ids:
        status = await deployment.client.wait_for_completion(instance_id, timeout=30)
        assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert supervisor.is_running()


async def test_killing_the_supervisor_kills_its_processes(deployment: Deployment) -> None:
    _, children = processes_of(deployment)

    deployment.group["orchestrator"].kill()

    async def all_gone() -> bool:
        alive = [c.pid for c in children if c.is_running() and c.status() != "zombie"]
        assert not alive, f"still running: {alive}"
        return True

    await deployment.eventually(all_gone, timeout=10)


async def test_a_process_that_dies_takes_the_service_down(deployment: Deployment) -> None:
    _, [first, second] = processes_of(deployment)

    os.kill(first.pid, signal.SIGKILL)

    async def service_ended() -> int:
        process = deployment.group["orchestrator"].process
        assert process is not None
        status = process.poll()
        assert status is not None, "the supervisor is still running"
        return status

    assert await deployment.eventually(service_ended, timeout=30) != 0
    assert not second.is_running() or second.status() == "zombie"
    # Restarted (as its supervisor would be), it serves every partition again.
    deployment.group["orchestrator"].start()
    await deployment.wait_ready()
    instance_id = await deployment.client.start_new("hello_cities")
    status = await deployment.client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is OrchestrationStatus.COMPLETED
