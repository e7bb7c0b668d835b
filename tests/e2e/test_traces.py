"""Traces across the three services (ADR 32): each process exports its spans to files of
its own (``OTEL_TRACES_EXPORTER=file``), and the tests put the traces back together.

The orchestrator keeps no instance in memory here (``DF_CACHE_INSTANCES=0``): every episode
rebuilds its instance by replaying the history, as after a restart, so a replay that made
spans would show up as extra episode and activity spans.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.apps.orders import PLACED_QUEUE, OrderPlaced, instance_of
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
from tests.helpers.http import PREFIX
from tests.helpers.spans import Trace, read_spans
from tests.helpers.waiting import assert_eventually
from workflows.samples import CITIES

pytestmark = pytest.mark.e2e

SERVICES = {"durable-client", "durable-orchestrator", "durable-activities"}


@dataclass
class TracedDeployment:
    group: ServiceGroup
    settings: CommonSettings
    client: DurableClient
    http: httpx.AsyncClient
    spans_dir: Path

    async def start_over_http(self, name: str, body: Any = None, **params: str) -> str:
        response = await self.http.post(f"{PREFIX}/orchestrators/{name}", json=body, params=params)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def completed(self, instance_id: str) -> Any:
        status = await self.client.wait_for_completion(instance_id, timeout=60)
        assert status.runtime_status is OrchestrationStatus.COMPLETED, status
        return status.output

    async def trace_when(self, instance_id: str, episodes: int, activities: int) -> Trace:
        """The instance's trace once its processes have exported at least that many episode
        and activity spans (their exporters write every 100 ms)."""

        def complete() -> Trace:
            trace = Trace.of_instance(read_spans(self.spans_dir), instance_id)
            assert len(trace.named("episode ")) >= episodes, [s.name for s in trace.spans]
            assert len(trace.named("activity ")) >= activities, [s.name for s in trace.spans]
            return trace

        try:
            return await assert_eventually(complete, timeout=30, interval=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.group.logs()}") from error


@pytest.fixture(scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TracedDeployment]:
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=unique("traces"),
        partitions=4,
        function_modules=TEST_FUNCTION_MODULES,
    )
    spans_dir = tmp_path_factory.mktemp("spans")
    port = free_port()
    env = service_env(settings, port) | {
        "OTEL_TRACES_EXPORTER": "file",
        "DF_TRACES_FILE": str(spans_dir / "{service}-{pid}.jsonl"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "DF_CACHE_INSTANCES": "0",
        "DF_ORCHESTRATOR_PROCESSES": "2",
    }
    group = ServiceGroup(env, tmp_path_factory.mktemp("traces-logs"))
    client = await DurableClient.connect(settings, name="traces-test")
    headers = {"x-functions-key": MANAGEMENT_KEY}
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10)
    try:
        group.start()
        await group.wait_ready(settings.topology, activity_names_under_test())
        yield TracedDeployment(group, settings, client, http, spans_dir)
    finally:
        group.stop()
        await http.aclose()
        await client.close()
        await delete_broker_objects(settings.topology, activity_names_under_test())
        await drop_database(database_url)


async def test_one_http_start_of_a_chain_is_one_trace_across_the_three_services(
    traced: TracedDeployment,
) -> None:
    # The access key in the query, where a request's span would record it if it could.
    instance_id = await traced.start_over_http("hello_cities", code=MANAGEMENT_KEY)
    assert await traced.completed(instance_id) == [f"Hello {city}!" for city in CITIES]

    # A start, then one episode per result.
    trace = await traced.trace_when(instance_id, len(CITIES) + 1, len(CITIES))

    trace.assert_connected()
    assert trace.root.name == "POST /orchestrators/{functionName}"
    assert trace.root.service == "durable-client"
    assert trace.root.attributes["http.response.status_code"] == 202
    assert trace.root.kind == "SpanKind.SERVER"
    exported = "".join(p.read_text() for p in traced.spans_dir.glob("*.jsonl"))
    assert MANAGEMENT_KEY not in exported
    assert {s.service for s in trace.spans} == SERVICES
    episodes = trace.named("episode hello_cities", **{"durable.instance.id": instance_id})
    activities = trace.named("activity say_hello")
    # Every episode replayed the ones before it: still one span each, and one per activity.
    assert len(episodes) == len(CITIES) + 1
    assert len(activities) == len(CITIES)
    assert sorted(a.attributes["durable.task.id"] for a in activities) == sorted(
        {a.attributes["durable.task.id"] for a in activities}
    )
    assert all(trace.parent(e) == trace.root for e in episodes)
    assert all(trace.parent(a) in episodes for a in activities)
    assert {a.service for a in activities} == {"durable-activities"}
    assert [e.attributes["durable.episode.tasks_scheduled"] for e in episodes].count(1) == len(
        CITIES
    )


async def test_a_sub_orchestration_and_a_retry_timer_are_in_the_parents_trace(
    traced: TracedDeployment,
) -> None:
    order = {"order_id": "o-1", "fail_payment_attempts": 1, "ship": True}
    instance_id = await traced.start_over_http("process_order", order)
    output = await traced.completed(instance_id)
    assert output["shipped"] is True

    # charge_payment fails once and is retried after a timer; then ship_order (a child)
    # prints a label: three activity executions. The parent's episodes: its start, the
    # failure, the timer's fire, the success, the child's answer; the child's: its start
    # and the label.
    trace = await traced.trace_when(instance_id, 7, 3)

    trace.assert_connected()
    assert {s.service for s in trace.spans} == SERVICES
    assert len(trace.named("activity charge_payment")) == 2
    assert len(trace.named("activity print_label")) == 1
    [failed] = [s for s in trace.named("activity charge_payment") if s.status == "ERROR"]
    assert failed.attributes["durable.activity.attempt"] == 1
    parents = trace.named("episode process_order")
    children = trace.named("episode ship_order")
    assert (len(parents), len(children)) == (5, 2)
    events = [event for episode in parents for event in episode.events]
    assert events.count("timer.created") == 1
    assert events.count("timer.fired") == 1
    assert events.count("suborchestration.created") == 1
    assert events.count("suborchestration.completed") == 1
    [creator] = [e for e in parents if "suborchestration.created" in e.events]
    assert all(trace.parent(child) == creator for child in children)
    [label] = trace.named("activity print_label")
    assert trace.parent(label) in children


async def test_local_activities_are_spans_of_the_orchestrator_in_the_instances_trace(
    traced: TracedDeployment,
) -> None:
    instance_ids = [
        await traced.start_over_http("slow_chain", {"steps": 3, "activity": activity})
        for activity in ("slow_echo_plain_local", "slow_echo_local")
    ]
    for instance_id, activity in zip(
        instance_ids, ("slow_echo_plain_local", "slow_echo_local"), strict=True
    ):
        await traced.completed(instance_id)
        trace = await traced.trace_when(instance_id, 4, 3)
        trace.assert_connected()
        spans = trace.named(f"activity {activity}")
        assert len(spans) == 3
        assert {s.service for s in spans} == {"durable-orchestrator"}
        assert len(trace.named("episode slow_chain")) == 4
        assert all(trace.parent(s).name == "episode slow_chain" for s in spans)


async def test_episodes_after_an_orchestrator_restart_join_the_instances_trace(
    traced: TracedDeployment,
) -> None:
    instance_id = await traced.start_over_http("waits_for_approval", 120)
    await traced.trace_when(instance_id, 1, 0)
    traced.group["orchestrator"].stop()
    traced.group["orchestrator"].start()
    await traced.group.wait_ready(traced.settings.topology, activity_names_under_test())

    response = await traced.http.post(
        f"{PREFIX}/instances/{instance_id}/raiseEvent/Approval", json={"ok": True}
    )
    assert response.status_code == 202, response.text
    assert await traced.completed(instance_id) == {"answer": {"ok": True}}

    trace = await traced.trace_when(instance_id, 2, 0)
    trace.assert_connected()
    episodes = trace.named("episode waits_for_approval")
    [second] = [e for e in episodes if "event.raised" in e.events]
    [first] = [e for e in episodes if e != second]
    assert "timer.created" in first.events  # the event's deadline
    assert first.pid != second.pid  # before and after the restart
    assert trace.parent(second) == trace.root


async def test_a_broker_submission_continues_the_senders_trace(traced: TracedDeployment) -> None:
    trace_id, sender_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    order_id = unique("traced-")
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(
                OrderPlaced(order_id=order_id, items=["tea"]).model_dump_json().encode(),
                headers={"traceparent": f"00-{trace_id}-{sender_span}-01"},
            ),
            routing_key=traced.settings.topology.workflow_name(PLACED_QUEUE),
        )
    finally:
        await connection.close()

    trace = await traced.trace_when(instance_of(order_id), 1, 0)

    [submission] = trace.named("process ")
    assert submission.service == "durable-client"
    assert submission.kind == "SpanKind.CONSUMER"
    assert (submission.trace_id, submission.parent_id) == (f"0x{trace_id}", f"0x{sender_span}")
    [episode] = trace.named("episode order_received")
    assert trace.parent(episode) == submission


async def test_without_tracing_nothing_is_added_to_messages_or_history(
    services: ServiceGroup, client: DurableClient, pool: asyncpg.Pool
) -> None:
    instance_id = await client.start_new("process_order", input={"order_id": "o-2"})
    await client.wait_for_completion(instance_id, timeout=60)

    payloads = await pool.fetch(
        "SELECT payload FROM events WHERE instance_id = ANY($1::text[])",
        [instance_id, *(await _children(pool, instance_id))],
    )
    assert payloads
    assert not [p for p in payloads if "traceparent" in p["payload"]]


async def _children(pool: asyncpg.Pool, instance_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT instance_id FROM instances WHERE parent_instance_id = $1", instance_id
    )
    return [row["instance_id"] for row in rows]
