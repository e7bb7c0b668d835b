"""The machine's ceilings, measured in the same run: what Postgres and RabbitMQ can do at all.

- Postgres: single-row INSERT transactions, each committed (synchronous_commit as the server
  has it, on here), from one connection and from eight at once (group commit).
- RabbitMQ: persistent publishes to a quorum queue, each confirmed, one at a time and with
  100 in flight.
- RabbitMQ, a task's round trip with nothing else to do: a message published to one quorum
  queue, taken by a consumer on another connection that publishes a reply to a second quorum
  queue, waits for its confirm and acknowledges; the round trip ends when the reply is
  delivered. That is a step's way through a broker (the task to a worker, its result back),
  with every confirm, delivery and acknowledgement, and no runtime's code in it.
- From those, the most sequential steps a second that a runtime with our guarantees can run
  through a broker: each step waits for a commit, then a confirmed publish of the task, then
  a confirmed publish of its result, one after the other, before any process does any work;
  and, measured rather than summed, a commit then the round trip.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import asyncpg

from bench.config import Endpoints
from bench.measure import create_database, drop_database, unique_name
from durable.broker import connect


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
    connection = await connect(endpoints.amqp_url, "bench.ceilings")
    queue_name = unique_name("bench.ceiling.")
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await _quorum_queue(channel, queue_name)
        started = time.monotonic()
        sequential = 0
        while time.monotonic() - started < seconds:
            await channel.default_exchange.publish(_message(), routing_key=queue_name)
            sequential += 1
        sequential_rate = sequential / (time.monotonic() - started)

        started = time.monotonic()
        pipelined = 0
        while time.monotonic() - started < seconds:
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(_message(), routing_key=queue_name)
                    for _ in range(100)
                )
            )
            pipelined += 100
        pipelined_rate = pipelined / (time.monotonic() - started)
        await queue.delete(if_unused=False, if_empty=False)
        round_trips = await _round_trips_per_s(endpoints, connection, seconds)
        return {
            "rabbitmq_confirmed_publishes_per_s_1_in_flight": round(sequential_rate),
            "rabbitmq_confirmed_publishes_per_s_100_in_flight": round(pipelined_rate),
            "rabbitmq_round_trips_per_s": round(round_trips),
        }
    finally:
        await connection.close()


async def _round_trips_per_s(
    endpoints: Endpoints, connection: aio_pika.abc.AbstractConnection, seconds: float
) -> float:
    """Sequential round trips through two quorum queues: publish (confirmed) to the first, a
    consumer on its own connection publishes a reply (confirmed) to the second and then
    acknowledges, the reply is delivered back and acknowledged."""
    task_queue, result_queue = unique_name("bench.ceiling.task."), unique_name("bench.ceiling.")
    relay = await connect(endpoints.amqp_url, "bench.ceilings.relay")
    channel = await connection.channel(publisher_confirms=True)
    queues = [await _quorum_queue(channel, name) for name in (task_queue, result_queue)]
    try:
        replies: asyncio.Queue[None] = asyncio.Queue()
        relay_channel = await relay.channel(publisher_confirms=True)

        async def reply(delivery: aio_pika.abc.AbstractIncomingMessage) -> None:
            await relay_channel.default_exchange.publish(_message(), routing_key=result_queue)
            await delivery.ack()

        async def received(delivery: aio_pika.abc.AbstractIncomingMessage) -> None:
            await delivery.ack()
            replies.put_nowait(None)

        tasks = await relay_channel.get_queue(task_queue, ensure=False)
        await tasks.consume(reply)
        results = await (await connection.channel()).get_queue(result_queue, ensure=False)
        await results.consume(received)
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < seconds:
            await channel.default_exchange.publish(_message(), routing_key=task_queue)
            await asyncio.wait_for(replies.get(), 10)
            count += 1
        return count / (time.monotonic() - started)
    finally:
        await relay.close()
        for queue in queues:
            await queue.delete(if_unused=False, if_empty=False)


async def _quorum_queue(
    channel: aio_pika.abc.AbstractChannel, name: str
) -> aio_pika.abc.AbstractQueue:
    return await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})


def _message() -> aio_pika.Message:
    return aio_pika.Message(b"x" * 300, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


def serial_step_ceiling(measured: dict[str, float]) -> dict[str, float]:
    """Sequential steps/s that a commit and two confirmed publishes in series allow, from the
    single-connection and one-in-flight rates; and that a commit and a round trip allow
    (each left out when what it needs was not measured)."""
    commits = measured.get("postgres_commits_per_s_1_connection")
    publishes = measured.get("rabbitmq_confirmed_publishes_per_s_1_in_flight")
    ceilings: dict[str, float] = {}
    if commits and publishes:
        ceilings["serial_step_ceiling_per_s"] = round(1 / (1 / commits + 2 / publishes))
    round_trips = measured.get("rabbitmq_round_trips_per_s")
    if commits and round_trips:
        ceilings["round_trip_step_ceiling_per_s"] = round(1 / (1 / commits + 1 / round_trips))
    return ceilings
