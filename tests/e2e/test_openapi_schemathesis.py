"""Schemathesis against the client service's ``/openapi.json``: requests generated from the
documented API, valid and not, each answered without a server error, with a status code,
content type, headers and body the OpenAPI documents for it.

The requests purge, terminate and raise events at random, so they go to a deployment of
their own (its own database and broker namespace), never the session's. The API is also
served under ``/durabletask`` for Durable Functions' SDKs; that copy is not in the schema,
and is the same routes. Run alone: ``pytest -m properties``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from services.client.api import create_app
from services.client.settings import ClientSettings
from tests.conftest import (
    AMQP_URL,
    MANAGEMENT_KEY,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.waiting import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.properties]

FUZZED_CASES_PER_OPERATION = 25
"""Schemathesis's generated cases per operation, besides its coverage cases (for the
session's budget: about 600 requests in all)."""

SEEDED = {
    "api-completed": ("hello_cities", ["Oslo"], OrchestrationStatus.COMPLETED),
    "api-failed": ("failing_orchestrator", "why", OrchestrationStatus.FAILED),
    "api-running": ("waits_for_approval", 3600, OrchestrationStatus.RUNNING),
    "api-suspended": ("waits_for_approval", 3600, OrchestrationStatus.SUSPENDED),
}
"""Instances the deployment starts with, by id: orchestrator, input and the status they are
in before the requests begin, so that requests naming them meet every kind of instance."""

DICTIONARIES = {
    "orchestrators": ["hello_cities", "waits_for_approval", "failing_orchestrator", "round_trip"],
    "instances": sorted(SEEDED),
    "events": ["Approval", "Value"],
}
"""Names the deployment knows, which half the generated requests use instead of random
text (a random orchestrator name is only ever refused, a random id only ever not found)."""


@pytest.fixture(scope="module")
async def api_deployment(
    tmp_path_factory: pytest.TempPathFactory, approver_broker_users: None
) -> AsyncIterator[str]:
    """The three services on a database and namespace of their own, with the ``SEEDED``
    instances; their base URL."""
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=unique("api"),
        partitions=2,
        function_modules=TEST_FUNCTION_MODULES,
    )
    env = service_env(settings, free_port()) | {"DF_ORCHESTRATOR_PROCESSES": "1"}
    group = ServiceGroup(env, tmp_path_factory.mktemp("schemathesis-logs"))
    client = await DurableClient.connect(settings, name="schemathesis")
    try:
        group.start()
        await group.wait_ready(settings.topology, activity_names_under_test())
        await seed(client)
        yield f"http://127.0.0.1:{env['DF_HTTP_PORT']}"
    finally:
        group.stop()
        await client.close()
        await delete_broker_objects(settings.topology, activity_names_under_test())
        await drop_database(database_url)


async def seed(client: DurableClient) -> None:
    for instance_id, (name, input_, _) in SEEDED.items():
        await client.start_new(name, instance_id, input_)
    await wait_for_status(client, "api-suspended", OrchestrationStatus.RUNNING)
    await client.suspend("api-suspended")
    for instance_id, (_, _, status) in SEEDED.items():
        await wait_for_status(client, instance_id, status)


def documented_schema() -> Any:
    """The OpenAPI the client service serves, made by its own code, with the settings of
    this run (fixed seed: the same requests every time).

    Made here rather than read from the running service: Schemathesis parametrizes tests
    when they are collected, before the deployment's address is known, and its loader for a
    schema from a fixture fails on this pytest (it sets ``Function._nodeid``, which pytest 9
    no longer has). ``test_the_service_serves_this_schema`` holds the two equal.

    Every check runs but ``positive_data_acceptance``: as in Durable Functions, a request the
    schema allows is refused with 400 when it names an orchestrator no service registered, or
    restarts an instance that does not exist, or carries a continuation token this service
    did not issue, which no OpenAPI schema can say.
    """
    app = create_app(ClientSettings(management_keys=SecretStr(MANAGEMENT_KEY)))
    config = SchemathesisConfig.from_dict(
        {
            "seed": 14,
            "auth": {"openapi": {"APIKeyHeader": {"api_key": MANAGEMENT_KEY}}},
            "generation": {
                "max-examples": FUZZED_CASES_PER_OPERATION,
                "mode": "all",
                # No example database: what an earlier run found must not change this one.
                "database": "none",
            },
            "dictionaries": {name: {"values": values} for name, values in DICTIONARIES.items()},
            "parameters": {
                "path.functionName": {"dictionary": "orchestrators", "probability": 0.5},
                "path.instanceId": {"dictionary": "instances", "probability": 0.5},
                "path.eventName": {"dictionary": "events", "probability": 0.5},
            },
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(app.openapi(), config=config)


schema = documented_schema()


async def test_the_service_serves_this_schema(api_deployment: str) -> None:
    async with httpx.AsyncClient() as http:
        served = await http.get(f"{api_deployment}/openapi.json")

    assert served.status_code == 200
    assert served.json() == schema.raw_schema


@schema.parametrize()
def test_every_documented_request_is_answered_as_documented_and_never_with_a_server_error(
    case: Any, api_deployment: str
) -> None:
    case.call_and_validate(base_url=api_deployment)
