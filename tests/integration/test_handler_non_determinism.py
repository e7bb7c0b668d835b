"""A history the deployed code no longer matches ends the instance as Failed, with the error."""

from __future__ import annotations

import asyncpg

from contracts import FailureDetails, OrchestrationStatus
from durable.app import FunctionApp
from services.orchestrator.cache import InstanceCache
from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import handle, stored_instance


def reserve_then_charge(ctx):
    order = ctx.get_input()
    yield ctx.call_activity("reserve_stock", order)
    yield ctx.call_activity("charge_card", order)


def charge_then_reserve(ctx):
    order = ctx.get_input()
    yield ctx.call_activity("charge_card", order)
    yield ctx.call_activity("reserve_stock", order)


def deployment(orchestrator, pool: asyncpg.Pool, topology) -> OrchestrationHandler:  # type: ignore[no-untyped-def]
    app = FunctionApp()
    app.orchestrators["process_order"] = orchestrator
    return OrchestrationHandler(pool, app, InstanceCache(max_instances=0), topology)


async def test_a_mismatch_found_while_rebuilding_fails_the_instance_at_its_next_message(
    pool: asyncpg.Pool, topology
) -> None:
    instance_id = unique("order-")
    start = messages.start(instance_id, "process_order", {"id": 1042})
    await handle(deployment(reserve_then_charge, pool, topology), pool, [start])

    # The code changes while the instance waits for its first activity.
    reserved = messages.task_completed(instance_id, messages.execution_of(start), 0, "reserved")
    await handle(deployment(charge_then_reserve, pool, topology), pool, [reserved])

    stored = await stored_instance(pool, instance_id)
    assert stored.row["status"] == OrchestrationStatus.FAILED.value
    failure = FailureDetails.model_validate_json(stored.row["failure"])
    assert failure.error_type == "NonDeterminismError"
    assert "event #0" in failure.message
    assert "reserve_stock" in failure.message
    assert "charge_card" in failure.message
    assert stored.event_types[-2:] == ["OrchestratorStarted", "ExecutionFailed"]
