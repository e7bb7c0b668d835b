"""The three services' ``/metrics``: a hello_cities run and a failing orchestration, started
over HTTP, read back as counters and histograms from the client, the orchestrator (all of
its processes on one port) and the activities service."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.processes import ServiceGroup
from tests.helpers.http import PREFIX, poll_until_ended
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

CITIES = ["Oslo", "Lima", "Hanoi"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """Every sample a ``/metrics`` endpoint answers, by name and labels."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_a_run_and_a_failure_are_counted_by_the_three_services(
    services: ServiceGroup, http: httpx.AsyncClient
) -> None:
    urls: Mapping[str, str | None] = {
        name: services[name].health_url for name in ("client", "orchestrator", "activities")
    }
    assert all(urls.values()), urls
    before = {name: await scrape(url) for name, url in urls.items() if url}

    started = await http.post(f"{PREFIX}/orchestrators/hello_cities", json=CITIES)
    failing = await http.post(f"{PREFIX}/orchestrators/failing_orchestrator", json="the plan")
    assert (started.status_code, failing.status_code) == (202, 202)
    completed = await poll_until_ended(http, started.json()["statusQueryGetUri"])
    failed = await poll_until_ended(http, failing.json()["statusQueryGetUri"])
    assert completed.json()["runtimeStatus"] == "Completed"
    assert failed.json()["runtimeStatus"] == "Failed"

    async def counted() -> bool:
        after = {name: await scrape(url) for name, url in urls.items() if url}
        client, orchestrator, activities = (
            (before[name], after[name]) for name in ("client", "orchestrator", "activities")
        )
        starts = "durable_client_orchestrations_started_total"
        assert moved(*client, starts, orchestrator="hello_cities", via="http") == 1
        assert moved(*client, starts, orchestrator="failing_orchestrator", via="http") == 1

        ended = "durable_orchestrations_ended_total"
        episodes = "durable_orchestrator_episode_duration_seconds_count"
        assert (
            moved(
                *orchestrator, "durable_orchestrations_started_total", orchestrator="hello_cities"
            )
            == 1
        )
        assert moved(*orchestrator, ended, orchestrator="hello_cities", outcome="completed") == 1
        assert (
            moved(*orchestrator, ended, orchestrator="failing_orchestrator", outcome="failed") == 1
        )
        assert moved(*orchestrator, "durable_activities_scheduled_total", activity="say_hello") == 3
        assert moved(*orchestrator, episodes, orchestrator="hello_cities") == 1 + len(CITIES)
        assert moved(*orchestrator, "durable_orchestrator_batch_commit_seconds_count") >= 4

        executions = "durable_activity_duration_seconds_count"
        slow = "durable_activity_duration_seconds_bucket"
        assert moved(*activities, executions, activity="say_hello", outcome="completed") == 3
        assert moved(*activities, executions, activity="echo", outcome="completed") == 1
        # Each greeting took less than the last finite bucket (an hour): le is read as exposed.
        assert moved(*activities, slow, activity="say_hello", outcome="completed", le="3600.0") == 3
        return True

    await assert_eventually(counted, timeout=15)
