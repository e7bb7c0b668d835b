"""Listing instances over HTTP by orchestrator name and custom status, with a total count,
on the real services."""

from __future__ import annotations

import json

import httpx
import pytest

from durable.client import DurableClient
from tests.conftest import unique
from tests.helpers.http import PREFIX

pytestmark = pytest.mark.e2e

TOTAL = "x-ms-total-count"
TOKEN = "x-ms-continuation-token"


@pytest.fixture
async def prefix(client: DurableClient) -> str:
    """Three completed hello_cities (custom status: the last greeting, done and of) and a
    waiting waits_for_approval (no custom status), under one prefix."""
    prefix = unique("query-")
    for n, cities in enumerate([["Oslo", "Lima"], ["Lima"], ["Oslo"]]):
        await client.start_new("hello_cities", f"{prefix}-{n}", cities)
    await client.start_new("waits_for_approval", f"{prefix}-waiting", 60)
    for n in range(3):
        await client.wait_for_completion(f"{prefix}-{n}", timeout=30)
    return prefix


async def listed(http: httpx.AsyncClient, prefix: str, **params: str) -> httpx.Response:
    response = await http.get(f"{PREFIX}/instances", params={"instanceIdPrefix": prefix, **params})
    assert response.status_code == 200, response.text
    return response


def suffixes(response: httpx.Response) -> list[str]:
    return [i["instanceId"].rsplit("-", 1)[1] for i in response.json()]


async def test_lists_filter_by_name_and_custom_status(
    http: httpx.AsyncClient, client: DurableClient, prefix: str
) -> None:
    by_name = await listed(http, prefix, name="hello_cities")
    other_name = await listed(http, prefix, name="waits_for_approval")
    lima_last = await listed(http, prefix, customStatus=json.dumps({"greeting": "Lima"}))
    two_cities = await listed(
        http, prefix, name="hello_cities", customStatus=json.dumps({"of": 2, "done": 1})
    )

    assert suffixes(by_name) == ["0", "1", "2"]
    assert suffixes(other_name) == ["waiting"]
    assert suffixes(lima_last) == ["0", "1"]
    assert suffixes(two_cities) == ["0"]
    assert two_cities.json()[0]["customStatus"] == {"greeting": "Lima", "done": 1, "of": 2}
    await client.terminate(f"{prefix}-waiting", "test done")


async def test_a_total_count_comes_with_every_page_when_asked_for(
    http: httpx.AsyncClient, client: DurableClient, prefix: str
) -> None:
    first = await listed(http, prefix, top="1", showTotalCount="true")
    second = await http.get(
        f"{PREFIX}/instances",
        params={"instanceIdPrefix": prefix, "top": "1", "showTotalCount": "True"},
        headers={TOKEN: first.headers[TOKEN]},
    )
    filtered = await listed(http, prefix, runtimeStatus="Running", showTotalCount="true")
    uncounted = await listed(http, prefix)

    assert len(first.json()) == 1
    assert first.headers[TOTAL] == second.headers[TOTAL] == "4"
    assert suffixes(second) == ["1"]
    assert filtered.headers[TOTAL] == "1"
    assert TOTAL not in uncounted.headers
    await client.terminate(f"{prefix}-waiting", "test done")


async def test_durable_functions_sdks_list_at_instances_with_a_slash(
    http: httpx.AsyncClient, client: DurableClient, prefix: str
) -> None:
    public = await http.get(
        f"{PREFIX}/instances/", params={"instanceIdPrefix": prefix, "name": "hello_cities"}
    )
    rpc = await http.get(
        "/durabletask/instances/", params={"instanceIdPrefix": prefix, "name": "hello_cities"}
    )

    assert suffixes(public) == suffixes(rpc) == ["0", "1", "2"]
    await client.terminate(f"{prefix}-waiting", "test done")


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"customStatus": "{stage: manager}"}, "Invalid JSON content in the customStatus filter"),
        ({"customStatus": "null"}, "other than null"),
        ({"showTotalCount": "yes"}, "showTotalCount"),
    ],
)
async def test_bad_query_values_are_400(
    http: httpx.AsyncClient, params: dict[str, str], complaint: str
) -> None:
    response = await http.get(f"{PREFIX}/instances", params=params)

    assert response.status_code == 400, response.text
    assert complaint in response.json()["message"]
