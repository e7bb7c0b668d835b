"""The client service's HTTP API: listing instances (filters, paging with the
``x-ms-continuation-token`` header) and purging them, on the real services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from durable.client import DurableClient
from tests.conftest import unique
from tests.helpers.http import PREFIX, poll_until_status

pytestmark = pytest.mark.e2e

TOKEN = "x-ms-continuation-token"


async def start_completed(client: DurableClient, instance_id: str, cities: list[str]) -> None:
    await client.start_new("hello_cities", instance_id, cities)
    await client.wait_for_completion(instance_id, timeout=30)


async def test_list_filters_by_prefix_status_and_creation_time(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    prefix = unique("list-")
    before = datetime.now(UTC) - timedelta(seconds=1)
    await start_completed(client, f"{prefix}-done", ["Oslo"])
    waiting = f"{prefix}-waiting"
    await client.start_new("waits_for_approval", waiting, 30)

    everything = await http.get(f"{PREFIX}/instances", params={"instanceIdPrefix": prefix})
    completed = await http.get(
        f"{PREFIX}/instances",
        params={"instanceIdPrefix": prefix, "runtimeStatus": "Completed,Failed"},
    )
    in_range = await http.get(
        f"{PREFIX}/instances",
        params={"instanceIdPrefix": prefix, "createdTimeFrom": before.isoformat()},
    )
    too_late = await http.get(
        f"{PREFIX}/instances",
        params={"instanceIdPrefix": prefix, "createdTimeTo": before.isoformat()},
    )
    no_input = await http.get(
        f"{PREFIX}/instances", params={"instanceIdPrefix": prefix, "showInput": "false"}
    )

    assert everything.status_code == 200, everything.text
    assert [i["instanceId"] for i in everything.json()] == [f"{prefix}-done", waiting]
    assert TOKEN not in everything.headers
    first = everything.json()[0]
    assert set(first) == {
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    }
    assert (first["name"], first["input"], first["output"]) == (
        "hello_cities",
        ["Oslo"],
        ["Hello Oslo!"],
    )
    assert first["createdTime"].endswith("Z")
    assert [i["instanceId"] for i in completed.json()] == [f"{prefix}-done"]
    assert len(in_range.json()) == 2
    assert too_late.json() == []
    assert [i["input"] for i in no_input.json()] == [None, None]
    await client.terminate(waiting, "test done")


async def test_list_pages_with_the_continuation_token_header(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    prefix = unique("page-")
    ids = [f"{prefix}-{n}" for n in range(5)]
    for instance_id in ids:
        await client.start_new("hello_cities", instance_id, [])

    seen: list[str] = []
    pages = 0
    headers: dict[str, str] = {}
    while True:
        response = await http.get(
            f"{PREFIX}/instances",
            params={"instanceIdPrefix": prefix, "top": "2"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        pages += 1
        seen += [i["instanceId"] for i in response.json()]
        if TOKEN not in response.headers:
            break
        headers = {TOKEN: response.headers[TOKEN]}

    assert seen == ids
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "headers", "complaint"),
    [
        ({"runtimeStatus": "Running,Sleeping"}, {}, "Sleeping"),
        ({"createdTimeFrom": "yesterday"}, {}, "ISO 8601"),
        ({"top": "ten"}, {}, "top"),
        ({"top": "0"}, {}, "top"),
        ({"showInput": "nope"}, {}, "showInput"),
        ({}, {TOKEN: "not-a-token"}, "continuation token"),
    ],
)
async def test_bad_list_parameters_are_400_with_a_clear_message(
    http: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], complaint: str
) -> None:
    response = await http.get(f"{PREFIX}/instances", params=params, headers=headers)

    assert response.status_code == 400, response.text
    assert complaint in response.json()["message"]


async def test_purging_an_ended_instance_deletes_it(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("purge-")
    await start_completed(client, instance_id, ["Oslo"])

    purged = await http.delete(f"{PREFIX}/instances/{instance_id}")
    again = await http.delete(f"{PREFIX}/instances/{instance_id}")

    assert purged.status_code == 200, purged.text
    assert purged.json() == {"instancesDeleted": 1}
    assert (await http.get(f"{PREFIX}/instances/{instance_id}")).status_code == 404
    assert await client.get_history(instance_id) == []
    assert again.status_code == 404


async def test_purging_an_instance_that_has_not_ended_is_412_and_keeps_it(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=30)
    status_url = started.json()["statusQueryGetUri"]
    await poll_until_status(http, status_url, "Running")

    response = await http.delete(started.json()["purgeHistoryDeleteUri"])

    assert response.status_code == 412, response.text
    assert "Running" in response.json()["message"]
    assert (await http.get(status_url)).status_code == 202
    await client.terminate(started.json()["id"], "test done")


async def test_purging_by_filter_deletes_the_ended_instances_in_range(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    prefix = unique("purge-by-")
    await start_completed(client, f"{prefix}-a", ["Oslo"])
    first = await client.get_status(f"{prefix}-a")
    assert first is not None
    # From this test's first instance on: earlier tests' instances stay out of range.
    since = first.created_at.isoformat()
    await start_completed(client, f"{prefix}-b", ["Lima"])
    waiting = f"{prefix}-waiting"
    await client.start_new("waits_for_approval", waiting, 30)
    last = await client.get_status(waiting)
    assert last is not None
    # ... and up to its last: instances other tests' background work starts meanwhile (a
    # submission consumed late, say) stay out of range too.
    window = {"createdTimeFrom": since, "createdTimeTo": last.created_at.isoformat()}

    none_failed = await http.delete(
        f"{PREFIX}/instances", params={**window, "runtimeStatus": "Failed"}
    )
    purged = await http.delete(
        f"{PREFIX}/instances", params={**window, "runtimeStatus": "Completed"}
    )
    nothing_left = await http.delete(f"{PREFIX}/instances", params=window)

    assert none_failed.status_code == 404, none_failed.text
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"instancesDeleted": 2}
    assert nothing_left.status_code == 404
    remaining = await http.get(f"{PREFIX}/instances", params={"instanceIdPrefix": prefix})
    assert [i["instanceId"] for i in remaining.json()] == [waiting]
    await client.terminate(waiting, "test done")


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({}, "createdTimeFrom"),
        ({"createdTimeFrom": "2026-13-01"}, "ISO 8601"),
        ({"createdTimeFrom": "2026-01-01", "runtimeStatus": "Done"}, "Done"),
    ],
)
async def test_purging_by_filter_with_bad_parameters_is_400(
    http: httpx.AsyncClient, params: dict[str, str], complaint: str
) -> None:
    response = await http.delete(f"{PREFIX}/instances", params=params)

    assert response.status_code == 400, response.text
    assert complaint in response.json()["message"]
