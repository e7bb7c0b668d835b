"""Typed functions on the real services: models in, models out, clear errors on mismatch."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient

pytestmark = pytest.mark.e2e


async def test_a_typed_orchestrator_and_activity_exchange_models(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("priced", input={"item": "bolt", "quantity": 4})

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.COMPLETED, status.failure
    assert status.output == {"item": "bolt", "total": 12.0}


async def test_an_orchestrator_input_that_does_not_match_fails_naming_the_field(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("priced", input={"item": "bolt", "quantity": 0})

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.FAILED
    assert status.failure is not None
    assert status.failure.error_type == "BoundaryError"
    assert "input of orchestrator 'priced'" in status.failure.message
    assert "quantity" in status.failure.message


async def test_an_activity_input_that_does_not_match_fails_the_task_without_retrying(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("prices_raw", input={"item": "bolt"})

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.output["error"] == "BoundaryError"
    assert "input of activity 'price_quote'" in status.output["message"]
    assert "quantity" in status.output["message"]
    assert status.output["retriable"] is False
