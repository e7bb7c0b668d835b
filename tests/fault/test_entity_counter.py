"""An entity counts exactly once through a crash: 100 orchestrations signal one counter
100 times each, and the orchestrator is killed with ``kill -9`` while the counter is
half-way; the counter ends at exactly 10,000 and its stream holds each signal once (ADR 38)."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus
from durable import EntityId
from tests.fault.conftest import Deployment

pytestmark = pytest.mark.fault

ORCHESTRATIONS = 100
SIGNALS_EACH = 100
TOTAL = ORCHESTRATIONS * SIGNALS_EACH


async def counter_value(deployment: Deployment, counter: EntityId) -> int:
    state = await deployment.client.read_entity_state(counter)
    return int(state.entity_state or 0) if state.entity_exists else 0


async def test_a_counter_signalled_by_100_orchestrations_counts_10000_through_a_kill(
    deployment: Deployment,
) -> None:
    counter = EntityId("counter", "crash")
    spec = {"key": counter.key, "count": SIGNALS_EACH}
    half = ORCHESTRATIONS // 2
    for n in range(half):
        await deployment.client.start_new("signal_counter", f"signaller-{n}", spec)

    async def counting() -> int:
        value = await counter_value(deployment, counter)
        assert value >= 500, f"the counter is at {value}"
        return value

    await deployment.eventually(counting, timeout=60, interval=0.005)
    deployment.group["orchestrator"].kill()
    at_kill = await counter_value(deployment, counter)
    assert at_kill < TOTAL, "every signal had been counted before the kill"
    for n in range(half, ORCHESTRATIONS):
        await deployment.client.start_new("signal_counter", f"signaller-{n}", spec)
    deployment.group["orchestrator"].start()
    await deployment.wait_ready()

    async def all_counted() -> int:
        value = await counter_value(deployment, counter)
        assert value == TOTAL, f"the counter is at {value} of {TOTAL}"
        return value

    await deployment.eventually(all_counted, timeout=120, interval=0.2)

    ended = await deployment.pool.fetchval(
        "SELECT count(*) FROM instances WHERE name = 'signal_counter' AND status = $1",
        OrchestrationStatus.COMPLETED.value,
    )
    assert ended == ORCHESTRATIONS
    recorded = await deployment.pool.fetchrow(
        """
        SELECT count(*) AS events, count(DISTINCT message_id) AS messages,
               max(seq) - min(seq) + 1 AS span
        FROM events WHERE instance_id = $1 AND event_type = 'EntityOperationSignaled'
        """,
        counter.instance_id,
    )
    assert dict(recorded) == {"events": TOTAL, "messages": TOTAL, "span": TOTAL}
    # Nothing is left to send that could count again, and nothing did.
    await deployment.eventually(lambda: _drained(deployment), timeout=30)
    assert await counter_value(deployment, counter) == TOTAL


async def _drained(deployment: Deployment) -> bool:
    left = await deployment.pool.fetchval("SELECT count(*) FROM outbox")
    assert left == 0, f"{left} outbox rows unsent"
    return True
