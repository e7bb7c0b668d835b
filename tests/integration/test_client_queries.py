"""Listing and counting instances with DurableClient: name, custom-status containment, id
prefix, paging and counts, on the real event store."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from contracts import OrchestrationStatus
from durable.client import DurableClient
from tests.conftest import unique
from tests.integration.read_model import set_state

RUNNING = OrchestrationStatus.RUNNING
COMPLETED = OrchestrationStatus.COMPLETED


async def started(
    client: DurableClient, pool: asyncpg.Pool, instance_id: str, name: str, custom: object
) -> str:
    await client.start_new(name, instance_id, None)
    await set_state(pool, instance_id, RUNNING, custom_status=custom)
    return instance_id


@pytest.fixture
async def catalogue(private_client: DurableClient, pool: asyncpg.Pool) -> dict[str, str]:
    """Five instances of two orchestrators under one prefix, with varied custom statuses."""
    prefix = unique("q_")  # "_" is a LIKE wildcard: the prefix filter must take it literally
    specs = {
        "manager": ("approval", {"stage": "manager", "assignee": "mia", "level": 1}),
        "head": ("approval", {"stage": "head", "assignee": "hugo", "level": 2}),
        "tagged": ("approval", {"stage": "manager", "tags": ["urgent", "large"]}),
        "plain": ("chain", "step 3"),
        "none": ("chain", None),
    }
    return {
        key: await started(private_client, pool, f"{prefix}-{key}", f"{prefix}{name}", custom)
        for key, (name, custom) in specs.items()
    } | {"prefix": prefix}


async def ids(client: DurableClient, prefix: str, **filters: object) -> list[str]:
    page = await client.get_status_by(instance_id_prefix=prefix, **filters)  # type: ignore[arg-type]
    return [status.instance_id.rsplit("-", 1)[1] for status in page.instances]


async def test_lists_filter_by_orchestrator_name(
    private_client: DurableClient, catalogue: dict[str, str]
) -> None:
    prefix = catalogue["prefix"]

    assert await ids(private_client, prefix, name=f"{prefix}chain") == ["plain", "none"]
    assert await ids(private_client, prefix, name=f"{prefix}CHAIN") == []


@pytest.mark.parametrize(
    ("contains", "expected"),
    [
        ({"stage": "manager"}, ["manager", "tagged"]),
        ({"stage": "manager", "level": 1}, ["manager"]),
        ({"tags": ["large"]}, ["tagged"]),
        ({"stage": "nobody"}, []),
        ("step 3", ["plain"]),
        ({}, ["manager", "head", "tagged"]),
    ],
)
async def test_lists_filter_by_custom_status_containment(
    private_client: DurableClient,
    catalogue: dict[str, str],
    contains: object,
    expected: list[str],
) -> None:
    found = await ids(private_client, catalogue["prefix"], custom_status_contains=contains)

    assert found == expected


async def test_the_instance_id_prefix_is_taken_literally(
    private_client: DurableClient, catalogue: dict[str, str]
) -> None:
    prefix = catalogue["prefix"]
    wildcard = prefix.replace("q_", "q%")

    assert len(await ids(private_client, prefix)) == 5
    assert await ids(private_client, wildcard) == []


async def test_counts_cover_every_page_and_every_filter(
    private_client: DurableClient, pool: asyncpg.Pool, catalogue: dict[str, str]
) -> None:
    prefix = catalogue["prefix"]
    await set_state(pool, catalogue["head"], COMPLETED, custom_status={"stage": "head"})

    first = await private_client.get_status_by(instance_id_prefix=prefix, top=2)
    everything = await private_client.count_instances(instance_id_prefix=prefix)
    approvals = await private_client.count_instances(
        instance_id_prefix=prefix, name=f"{prefix}approval"
    )
    running_managers = await private_client.count_instances(
        runtime_status=[RUNNING],
        instance_id_prefix=prefix,
        custom_status_contains={"stage": "manager"},
    )
    none_yet = await private_client.count_instances(
        created_time_from=datetime.now(UTC), instance_id_prefix=prefix
    )

    assert len(first.instances) == 2
    assert first.continuation_token is not None
    assert (everything, approvals, running_managers, none_yet) == (5, 3, 2, 0)


async def test_a_value_that_is_not_json_is_refused_as_a_filter(
    private_client: DurableClient,
) -> None:
    with pytest.raises(TypeError):
        await private_client.count_instances(custom_status_contains={"when": object()})


async def test_custom_status_and_prefix_filters_can_use_an_index(pool: asyncpg.Pool) -> None:
    # Small tables are scanned whatever the indexes; forbidding scans shows an index fits.
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        by_status = await connection.fetch(
            "EXPLAIN SELECT instance_id FROM instances WHERE custom_status @> $1::jsonb",
            '{"stage": "manager"}',
        )
        by_prefix = await connection.fetch(
            "EXPLAIN SELECT instance_id FROM instances WHERE instance_id LIKE 'q\\_abc%'"
        )

    assert "instances_custom_status" in "\n".join(row[0] for row in by_status)
    plan = "\n".join(row[0] for row in by_prefix)
    assert "instances_instance_id_pattern" in plan or "instances_pkey" in plan
