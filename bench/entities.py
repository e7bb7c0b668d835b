"""W9, entity signals (ADR 38): how many signals per second our entities take, all to one
entity (one partition, one entity's operations strictly one at a time), then spread over
a thousand entities (every partition, each entity's operations batched together).

The signals are sent with ``DurableClient.signal_entity``, each confirmed by the broker,
``W9_SIGNALS_IN_FLIGHT`` in flight; the rate is the signals over the time from the first send
to the moment the states add up to them all, read from the entities' rows. Temporal's driver
measures the same with a workflow per entity (``bench/peers/temporal_entities.py``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from bench.config import W9_SIGNALS_IN_FLIGHT, Sizes
from bench.deployment import OurDeployment, Outcome
from bench.measure import wait_until
from durable import EntityId


async def w9_entity_signals(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    run = uuid.uuid4().hex[:8]
    one = [EntityId("bench_counter", f"w9-{run}-one")]
    many = [EntityId("bench_counter", f"w9-{run}-{n}") for n in range(sizes.w9_entities)]
    for label, entities in (("one_entity", one), ("many_entities", many)):
        signals = sizes.w9_signals
        started = time.monotonic()
        sent = await _signal(deployment, entities, signals)
        total, count = await _wait_for_total(deployment, run, entities, signals)
        wall = time.monotonic() - started
        outcome.metrics[f"{label}_signals_per_s"] = round(signals / wall, 1)
        if label == "one_entity":
            outcome.metrics["send_per_s"] = round(signals / sent, 1)
        outcome.check(f"{label}: every signal counted once", total == signals, total)
        outcome.check(f"{label}: every entity has state", count == len(entities), count)
    return outcome


async def _signal(deployment: OurDeployment, entities: Sequence[EntityId], signals: int) -> float:
    """Send ``signals`` ``add 1`` signals round-robin over ``entities``; the seconds taken."""
    client = deployment.client
    assert client is not None
    started = time.monotonic()
    next_signal = iter(range(signals))

    async def sender() -> None:
        for n in next_signal:
            await client.signal_entity(entities[n % len(entities)], "add", 1)

    await asyncio.gather(*(sender() for _ in range(min(W9_SIGNALS_IN_FLIGHT, signals))))
    return time.monotonic() - started


async def _wait_for_total(
    deployment: OurDeployment, run: str, entities: Sequence[EntityId], signals: int
) -> tuple[int, int]:
    """Wait until the entities' states add up to ``signals``; the sum and how many have
    state. A little longer afterwards would show a signal counted twice: the checks read the
    sum once more, after the wait."""
    pool = deployment.pool
    assert pool is not None
    ids = [entity.instance_id for entity in entities]

    async def totals() -> tuple[int, int]:
        row = await pool.fetchrow(
            "SELECT coalesce(sum(output::text::bigint), 0) AS total, count(*) AS count "
            "FROM instances WHERE instance_id = ANY($1::text[]) AND status = 'Running'",
            ids,
        )
        assert row is not None
        return int(row["total"]), int(row["count"])

    async def counted() -> bool:
        return (await totals())[0] >= signals

    await wait_until(counted, timeout=120 + signals / 100, interval=0.02, what=f"W9 {run}")
    return await totals()
