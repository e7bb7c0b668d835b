"""The machine's ceilings, measured in the same run: what Postgres and RabbitMQ can do at all.

- Postgres: single-row INSERT transactions, each committed (synchronous_commit as the server
  has it, on here), from one connection and from eight at once (group commit).
- RabbitMQ: persistent publishes to a quorum queue, each confirmed, one at a time and with
  100 in flight.
- From those, the most sequential steps a second that a runtime with our guarantees can run
  through a broker: each step waits for a commit, then a confirmed publish of the task, then
  a confirmed publish of its result, one after the other, before any process does any work.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import asyncpg

from bench.config import Endpoints
from bench.measure import create_database, drop_database, unique_name


async def _commits(url: str, seconds: float, connections: int) -> float:
    async def loop(connection: asyncpg.Connection, deadline: float) -> int:
        done = 0
        while time.monotonic() < deadline:
            async with connection.transaction():
                await connection.execute("INSERT INTO ceiling (payload) VALUES ($1)", "x" * 100)
            done += 1
        return done

    opened = [await asyncpg.connect(url) for _ in range(connections)]
    try:
        started = time.monotonic()
        counts = await asyncio.gather(*(loop(c, started + seconds) for c in opened))
        return sum(counts) / (time.monotonic() - started)
    finally:
        for connection in opened:
            await connection.close()


async def postgres_ceilings(endpoints: Endpoints, seconds: float) -> dict[str, float]:
    name = unique_name("bench_ceiling_")
    await create_database(endpoints.admin_database_url, name)
    url = endpoints.database_url(name)
    try:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                "CREATE TABLE ceiling (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "payload text NOT NULL)"
            )
            synchronous_commit = await connection.fetchval("SHOW synchronous_commit")
        finally:
            await connection.close()
        return {
            "postgres_commits_per_s_1_connection": round(await _commits(url, seconds, 1)),
            "postgres_commits_per_s_8_connections": round(await _commits(url, seconds, 8)),
            "postgres_synchronous_commit_on": float(synchronous_commit == "on"),
        }
    finally:
        await drop_database(endpoints.admin_database_url, name)


async def rabbitmq_ceilings(endpoints: Endpoints, seconds: float) -> dict[str, float]:
    connection = await aio_pika.connect(endpoints.amqp_url)
    queue_name = unique_name("bench.ceiling.")
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = b"x" * 300

        def message() -> aio_pika.Message:
            return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

        started = time.monotonic()
        sequential = 0
        while time.monotonic() - started < seconds:
            await channel.default_exchange.publish(message(), routing_key=queue_name)
            sequential += 1
        sequential_rate = sequential / (time.monotonic() - started)

        started = time.monotonic()
        pipelined = 0
        while time.monotonic() - started < seconds:
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(message(), routing_key=queue_name)
                    for _ in range(100)
                )
            )
            pipelined += 100
        pipelined_rate = pipelined / (time.monotonic() - started)
        await queue.delete(if_unused=False, if_empty=False)
        return {
            "rabbitmq_confirmed_publishes_per_s_1_in_flight": round(sequential_rate),
            "rabbitmq_confirmed_publishes_per_s_100_in_flight": round(pipelined_rate),
        }
    finally:
        await connection.close()


def serial_step_ceiling(measured: dict[str, float]) -> dict[str, float]:
    """Sequential steps/s that a commit and two confirmed publishes in series allow, from the
    single-connection and one-in-flight rates (nothing when either was not measured)."""
    commits = measured.get("postgres_commits_per_s_1_connection")
    publishes = measured.get("rabbitmq_confirmed_publishes_per_s_1_in_flight")
    if not commits or not publishes:
        return {}
    return {"serial_step_ceiling_per_s": round(1 / (1 / commits + 2 / publishes))}
