"""``durable entity`` as a subprocess, against the session's database, broker and services
(ADR 38): signal, get, list and clean, as text and with ``--json``."""

from __future__ import annotations

import pytest

from deploy.processes import ServiceGroup
from durable import EntityId
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import unique
from tests.helpers.cli import assert_one_line_error, cli_runner
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def durable(services: ServiceGroup, settings: CommonSettings):
    return cli_runner(settings)


async def state_reaches(durable, key: str, expected: object) -> dict:
    async def reached() -> dict:
        result = await durable("entity", "get", "counter", key, "--json")
        assert result.code == 0, result
        assert result.json()["state"] == expected, result.json()
        return result.json()

    return await assert_eventually(reached, timeout=30, interval=0.2)


async def test_signal_then_get_shows_the_state_as_text_and_json(durable) -> None:
    key = unique("cli-")
    missing = await durable("entity", "get", "counter", key)
    signalled = await durable("entity", "signal", "counter", key, "add", "--input", "5")
    as_json = await durable("entity", "signal", "Counter", key, "add", "--input", "2", "--json")

    got = await state_reaches(durable, key, 7)
    text = await durable("entity", "get", "counter", key)

    assert_one_line_error(missing, 1, "has no state")
    assert signalled.code == 0, signalled
    assert signalled.stdout.strip() == f"signalled 'add' to counter@{key}"
    assert as_json.json() == {"entityId": {"name": "counter", "key": key}, "operation": "add"}
    assert got["entityId"] == {"name": "counter", "key": key}
    assert "lockedBy" not in got
    assert text.code == 0
    assert f"entity    counter@{key}" in text.stdout
    assert "state     7" in text.stdout
    assert "locked by -" in text.stdout


async def test_signalling_an_unknown_entity_or_with_bad_json_is_a_usage_error(durable) -> None:
    unknown = await durable("entity", "signal", "no_such_entity", "k", "add")
    bad_input = await durable("entity", "signal", "counter", "k", "add", "--input", "{oops")
    bad_name = await durable("entity", "signal", "a@b", "k", "add")

    assert_one_line_error(unknown, 2, "no entity named 'no_such_entity'", "counter")
    assert_one_line_error(bad_input, 2, "--input is not valid JSON")
    assert_one_line_error(bad_name, 2, "@")


async def test_list_pages_through_the_entities_of_a_name(durable, client: DurableClient) -> None:
    keys = sorted(unique("list-") for _ in range(3))
    for key in keys:
        await client.signal_entity(EntityId("account", key), "deposit", 1)
    for key in keys:

        async def exists(key: str = key) -> bool:
            assert (await client.read_entity_state(EntityId("account", key))).entity_exists
            return True

        await assert_eventually(exists, timeout=30, interval=0.1)

    listed: list[dict] = []
    token: str | None = None
    pages = 0
    while True:
        args = ["entity", "list", "account", "--top", "2", "--state", "--json"]
        result = await durable(*args, *(["--continuation", token] if token else []))
        assert result.code == 0, result
        listed += result.json()["entities"]
        token = result.json()["continuationToken"]
        pages += 1
        if token is None:
            break
    text = await durable("entity", "list", "account", "--top", "1000")

    mine = [e for e in listed if e["entityId"]["key"] in keys]
    assert [e["entityId"]["key"] for e in mine] == keys
    assert all(e["state"] == 1 and e["entityId"]["name"] == "account" for e in mine)
    assert pages >= 2
    assert {e["entityId"]["name"] for e in listed} == {"account"}
    assert text.stdout.splitlines()[0].split() == ["NAME", "KEY", "UPDATED", "LOCKED", "BY"]
    assert all(key in text.stdout for key in keys)


async def test_clean_removes_a_deleted_entity(durable, client: DurableClient) -> None:
    key = unique("cli-clean-")
    await durable("entity", "signal", "counter", key, "add", "--input", "1")
    await state_reaches(durable, key, 1)
    await durable("entity", "signal", "counter", key, "delete")

    async def deleted() -> bool:
        assert not (await client.read_entity_state(EntityId("counter", key))).entity_exists
        return True

    await assert_eventually(deleted, timeout=30, interval=0.1)
    cleaned = await durable("entity", "clean", "--json")
    page = await client.list_entities("counter", page_size=1000, include_deleted=True)

    assert cleaned.code == 0, cleaned
    assert cleaned.json()["numberOfEmptyEntitiesRemoved"] >= 1
    assert "numberOfOrphanedLocksRemoved" in cleaned.json()
    assert key not in {record.entity_id.key for record in page.entities}
