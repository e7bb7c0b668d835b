"""The client service when the database or the broker goes away, and when it is stopped while
callers wait (issue 14's problems 5 and 8).

The client runs alone, as a real process, reaching Postgres and RabbitMQ through proxies the
test can cut (``tests.helpers.proxy``): an outage of its dependencies, and nothing else's.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from contracts import Topology
from deploy.processes import ServiceGroup
from durable.settings import CommonSettings
from durable.store.database import create_pool
from durable.store.registered_functions import record_registered_functions
from tests.conftest import (
    AMQP_URL,
    MANAGEMENT_KEY,
    TEST_FUNCTION_MODULES,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.http import PREFIX
from tests.helpers.proxy import TcpProxy
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.fault

SHUTDOWN_SECONDS = 3
MAX_WAIT_SECONDS = 4


@dataclass
class ClientAlone:
    group: ServiceGroup
    http: httpx.AsyncClient
    database: TcpProxy
    broker: TcpProxy
    pool: asyncpg.Pool
    """Straight to the database, past the proxy: what the test reads is the truth."""

    async def instance_exists(self, instance_id: str) -> bool:
        query = "SELECT count(*) FROM instances WHERE instance_id = $1"
        return bool(await self.pool.fetchval(query, instance_id))

    def log(self) -> str:
        return self.group["client"].log_path.read_text(errors="replace")


@pytest.fixture
async def alone(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClientAlone]:
    database_url = await create_database()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    # No orchestrator runs here: the client only needs to know what it may start.
    await record_registered_functions(pool, "orchestrator", ["hello_cities", "waits_for_approval"])
    database = await TcpProxy.to_url(database_url)
    broker = await TcpProxy.to_url(AMQP_URL)
    settings = CommonSettings(
        database_url=database.url(database_url),
        amqp_url=broker.url(AMQP_URL),
        namespace=unique("outage"),
        partitions=4,
        function_modules=TEST_FUNCTION_MODULES,
    )
    port = free_port()
    env = service_env(settings, port) | {
        "DF_ENTRY_POINTS": "",  # no broker consumers: the HTTP API alone
        "DF_SHUTDOWN_SECONDS": str(SHUTDOWN_SECONDS),
        "DF_HTTP_MAX_WAIT_SECONDS": str(MAX_WAIT_SECONDS),
    }
    group = ServiceGroup(env, tmp_path_factory.mktemp("outage-logs"), names=("client",))
    headers = {"x-functions-key": MANAGEMENT_KEY}
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
    try:
        group.start()

        async def answers() -> bool:
            assert group["client"].running, group.logs()
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await assert_eventually(answers, timeout=30, interval=0.1)
        yield ClientAlone(group, http, database, broker, pool)
    finally:
        # In a thread: the proxies run on this loop, and the client's clean stop goes
        # through them (closing its connections), so the loop must not block on the wait.
        await asyncio.to_thread(group.stop)
        await http.aclose()
        await database.close()
        await broker.close()
        await pool.close()
        await delete_broker_objects(Topology(namespace=settings.namespace), [])
        await drop_database(database_url)


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert "unavailable" in answer.json()["message"]


# --- 8: outages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dependency", ["database", "broker"])
async def test_readiness_says_which_dependency_is_down_and_comes_back_with_it(
    alone: ClientAlone, dependency: str
) -> None:
    ready = await alone.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    proxy = alone.database if dependency == "database" else alone.broker

    await proxy.cut()
    try:

        async def not_ready() -> dict[str, str]:
            answer = await alone.http.get("/readyz")
            assert answer.status_code == 503, answer.text
            return answer.json()["checks"]  # type: ignore[no-any-return]

        checks = await assert_eventually(not_ready, timeout=15, interval=0.2)
        other = "broker" if dependency == "database" else "database"
        assert checks[dependency] != "ok"
        assert checks[other] == "ok"
        # Alive all the while: a process manager must not restart it for an outage.
        assert (await alone.http.get("/livez")).status_code == 200
    finally:
        await proxy.restore()

    async def ready_again() -> bool:
        answer = await alone.http.get("/readyz")
        assert answer.status_code == 200, answer.text
        return True

    await assert_eventually(ready_again, timeout=30, interval=0.2)


async def test_while_the_database_is_down_calls_answer_503_at_once_and_create_nothing(
    alone: ClientAlone,
) -> None:
    kept = unique("kept-")
    started = await alone.http.post(f"{PREFIX}/orchestrators/hello_cities/{kept}")
    assert started.status_code == 202, started.text
    refused = unique("refused-")

    await alone.database.cut()
    began = time.monotonic()
    start = await alone.http.post(f"{PREFIX}/orchestrators/hello_cities/{refused}")
    status = await alone.http.get(f"{PREFIX}/instances/{kept}")
    listing = await alone.http.get(f"{PREFIX}/instances")
    elapsed = time.monotonic() - began

    for answer in (start, status, listing):
        assert_unavailable(answer)
    assert elapsed < 10, f"three calls took {elapsed:.1f} s"
    await alone.database.restore()
    assert not await alone.instance_exists(refused)

    async def starts_again() -> bool:
        answer = await alone.http.post(f"{PREFIX}/orchestrators/hello_cities/{refused}")
        assert answer.status_code == 202, answer.text
        return True

    await assert_eventually(starts_again, timeout=20, interval=0.2)
    assert await alone.instance_exists(refused)


async def test_while_the_broker_is_down_an_event_answers_503_and_a_start_is_kept(
    alone: ClientAlone,
) -> None:
    waiting = unique("waiting-")
    started = await alone.http.post(f"{PREFIX}/orchestrators/waits_for_approval/{waiting}")
    assert started.status_code == 202, started.text

    await alone.broker.cut()
    began = time.monotonic()
    event = await alone.http.post(
        f"{PREFIX}/instances/{waiting}/raiseEvent/Approval", json={"ok": True}
    )
    assert_unavailable(event)
    assert time.monotonic() - began < 10
    # A start is in the outbox once committed: the orchestrator's sweeper publishes it when
    # the broker is back, so the caller is told it was accepted.
    kept = unique("kept-")
    start = await alone.http.post(f"{PREFIX}/orchestrators/hello_cities/{kept}")
    assert start.status_code == 202, start.text
    assert await alone.instance_exists(kept)
    queued = "SELECT count(*) FROM outbox WHERE correlation_id = $1"
    assert await alone.pool.fetchval(queued, kept) == 1


# --- 5: long polls --------------------------------------------------------------------------------


async def test_a_long_poll_is_answered_at_the_maximum_wait(alone: ClientAlone) -> None:
    began = time.monotonic()
    answer = await alone.http.post(
        f"{PREFIX}/orchestrators/waits_for_approval",
        params={"timeout": "100000", "pollingInterval": "1"},
    )

    assert answer.status_code == 202, answer.text
    assert "statusQueryGetUri" in answer.json()
    assert MAX_WAIT_SECONDS - 0.5 < time.monotonic() - began < MAX_WAIT_SECONDS + 5


async def test_a_long_poll_ends_when_its_caller_disconnects(alone: ClientAlone) -> None:
    instance_id = unique("abandoned-")
    with pytest.raises(httpx.ReadTimeout):
        await alone.http.post(
            f"{PREFIX}/orchestrators/waits_for_approval/{instance_id}",
            params={"timeout": "100000", "pollingInterval": "1"},
            timeout=1.0,
        )

    def wait_ended() -> bool:
        lines = [line for line in alone.log().splitlines() if "http.wait_ended" in line]
        assert any("the caller disconnected" in line and instance_id in line for line in lines)
        return True

    await assert_eventually(wait_ended, timeout=5)


async def test_sigterm_during_a_long_poll_ends_the_client_within_its_shutdown_time(
    alone: ClientAlone,
) -> None:
    instance_id = unique("polled-")
    poll = asyncio.create_task(
        alone.http.post(
            f"{PREFIX}/orchestrators/waits_for_approval/{instance_id}",
            params={"timeout": "100000", "pollingInterval": "100000"},
        )
    )
    await assert_eventually(lambda: alone.instance_exists(instance_id), timeout=10)
    process = alone.group["client"].process
    assert process is not None

    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    await assert_eventually(lambda: process.poll() is not None, timeout=SHUTDOWN_SECONDS + 10)

    assert time.monotonic() - began < SHUTDOWN_SECONDS + 5
    assert process.returncode == 0, alone.group.logs()
    try:
        answer = await poll
    except httpx.HTTPError:
        return  # the connection closed with the service: the caller polls elsewhere
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == instance_id
