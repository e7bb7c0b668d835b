"""No access key or password reaches any service's log, whatever goes wrong and in either
log format.

A deployment of its own runs at debug level with recognisable random access keys, a
database role and a broker user whose passwords are random, and one service in each log
format per run (both runs together cover every service in both). The test drives errors
through every service: refused keys in the header and in ``?code=``, the right keys in
``?code=`` on routes that fail, a body the API cannot take, an activity and an orchestrator
that raise, invalid messages on a partition queue and an activity queue, and a database
outage while requests and messages are being handled (the services log the driver's errors,
with tracebacks). Then every log file is searched for every secret, and for any dozen
consecutive characters of one.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import httpx
import pytest

from contracts import Topology
from deploy.processes import ServiceGroup
from tests.conftest import (
    ADMIN_URL,
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    database_url_for,
    delete_broker_objects,
    drop_database,
    free_port,
    unique,
)
from tests.helpers.approval import approval_env
from tests.helpers.credentials import Credentials, broker_user, database_role
from tests.helpers.http import PREFIX, poll_until_ended
from tests.helpers.waiting import assert_eventually
from tests.integration import messages

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(
        shutil.which("rabbitmqctl") is None, reason="makes a broker user with rabbitmqctl"
    ),
]
T = TypeVar("T")

# Which log format each service uses, per run: each service in both over the two runs.
FORMAT_RUNS = {
    "client-console": {"client": "console", "orchestrator": "json", "activities": "console"},
    "client-json": {"client": "json", "orchestrator": "console", "activities": "json"},
}
SECRET_WINDOW = 12
"""A run of this many characters of a secret's random part counts as a leak (a secret cut
short is still a leak)."""


@dataclass(frozen=True)
class Secrets:
    management_key: str
    start_key: str
    wrong_key: str
    database: Credentials
    broker: Credentials

    def named(self) -> dict[str, str]:
        """Each secret by name, as the random part to search for."""
        return {
            "management key": self.management_key,
            "start key": self.start_key,
            "wrong key": self.wrong_key,
            "database password": self.database.password,
            "broker password": self.broker.password,
        }


@dataclass
class Deployment:
    group: ServiceGroup
    topology: Topology
    secrets: Secrets
    base_url: str
    pool: asyncpg.Pool

    async def eventually(self, check: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        try:
            return await assert_eventually(check, timeout=timeout, interval=0.05)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.group.logs()}") from error


@pytest.fixture(params=FORMAT_RUNS, ids=list(FORMAT_RUNS))
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    formats: Mapping[str, str] = FORMAT_RUNS[request.param]
    async with database_role(ADMIN_URL) as role, broker_user() as broker:
        name = unique("df_logtest_")
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{role.user}"')
        finally:
            await admin.close()
        topology = Topology(namespace=unique("logs"), partitions=2)
        found = Secrets(
            management_key=f"logtest-management-{secrets.token_hex(16)}",
            start_key=f"logtest-start-{secrets.token_hex(16)}",
            wrong_key=f"logtest-wrong-{secrets.token_hex(16)}",
            database=role,
            broker=broker,
        )
        port = free_port()
        env = {
            "DF_DATABASE_URL": role.in_url(database_url_for(name)),
            "DF_AMQP_URL": broker.in_url(AMQP_URL),
            "DF_NAMESPACE": topology.namespace,
            "DF_PARTITIONS": str(topology.partitions),
            "DF_FUNCTION_MODULES": TEST_FUNCTION_MODULES,
            "DF_HTTP_PORT": str(port),
            "DF_MANAGEMENT_KEYS": found.management_key,
            "DF_START_KEYS": found.start_key,
            "DF_LOG_LEVEL": "debug",
            # The access log too: it must not carry the keys sent in ``?code=``.
            "DF_HTTP_ACCESS_LOG": "true",
            # A supervisor and its processes, whatever the machine's cores (ADR 15).
            "DF_ORCHESTRATOR_PROCESSES": "2",
            # The role owns the database: the services migrate it, logging as they go.
            "DF_MIGRATE_ON_START": "true",
            **approval_env(),
        }
        group = ServiceGroup(env, tmp_path)
        for service_name, service in group.services.items():
            service.env = {**env, "DF_LOG_FORMAT": formats[service_name]}
        pool = await asyncpg.create_pool(database_url_for(name), min_size=1, max_size=2)
        try:
            group.start()
            await group.wait_ready(topology, activity_names_under_test())
            yield Deployment(group, topology, found, f"http://127.0.0.1:{port}", pool)
        finally:
            group.stop()
            await pool.close()
            await delete_broker_objects(topology, activity_names_under_test())
            await drop_database(database_url_for(name))


async def test_no_secret_reaches_any_log(deployment: Deployment) -> None:
    keys = deployment.secrets
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=10.0) as http:
        await refused_and_failing_requests(http, keys)
        await failing_functions(http, deployment)
    await invalid_messages(deployment)
    await database_outage(deployment)
    deployment.group.stop()

    services = deployment.group.services
    logs = {
        name: service.log_path.read_text(errors="replace") for name, service in services.items()
    }
    problems = []
    for name, text in logs.items():
        assert text.strip(), f"{name} logged nothing"
        for secret_name, secret in keys.named().items():
            for leaked in leaked_parts(text, secret):
                problems.append(f"the {secret_name} is in the {name} log: …{leaked}…")
        if services[name].env["DF_LOG_FORMAT"] == "json":
            # Libraries' lines too (uvicorn's, asyncpg's): they went through the same renderer.
            plain = [line for line in text.splitlines() if not line.startswith("{")]
            if plain:
                problems.append(f"{name}: {len(plain)} lines are not JSON, first: {plain[0]}")
    assert not problems, "\n".join(problems)
    # What the errors above made the services log (else the test proves nothing).
    assert "message.dead_lettered" in logs["orchestrator"]
    assert "message.dead_lettered" in logs["activities"]
    assert "Traceback (most recent call last)" in logs["orchestrator"]
    assert "http.request" in logs["client"]


def leaked_parts(text: str, secret: str) -> list[str]:
    """Each line where ``SECRET_WINDOW`` consecutive characters of the secret's random part
    occur, around the first of them."""
    random_part = secret.rpartition("-")[2]
    windows = [
        random_part[start : start + SECRET_WINDOW]
        for start in range(len(random_part) - SECRET_WINDOW + 1)
    ]
    found = []
    for line in text.splitlines():
        index = min((i for w in windows if (i := line.find(w)) >= 0), default=-1)
        if index >= 0:
            found.append(line[max(0, index - 80) : index + 60])
    return found


async def refused_and_failing_requests(http: httpx.AsyncClient, keys: Secrets) -> None:
    management, start = {"code": keys.management_key}, {"code": keys.start_key}
    unknown = f"{PREFIX}/instances/{unique('nobody-')}"
    wrong = await http.get(unknown, headers={"x-functions-key": keys.wrong_key})
    assert wrong.status_code == 401
    assert (await http.get(unknown, params={"code": keys.wrong_key})).status_code == 401
    narrow = await http.get(unknown, headers={"x-functions-key": keys.start_key})
    assert narrow.status_code == 401
    assert (await http.get(unknown, params=management)).status_code == 404

    waiting = unique("waiting-")
    started = await http.post(
        f"{PREFIX}/orchestrators/waits_for_approval/{waiting}", params=start, json=60
    )
    assert started.status_code == 202, started.text
    again = await http.post(
        f"{PREFIX}/orchestrators/waits_for_approval/{waiting}", params=start, json=60
    )
    assert again.status_code == 409, again.text
    not_json = await http.post(
        f"{PREFIX}/instances/{waiting}/raiseEvent/Approval",
        params=start,
        content=b'{"approved": tru',
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400, not_json.text
    # JSON the API cannot take (today a 500, once rejected up front a 400).
    odd = await status_of(
        http,
        "POST",
        f"{PREFIX}/orchestrators/hello_cities",
        params=start,
        content=b'[NaN, "\\ud800"]',
        headers={"content-type": "application/json"},
    )
    assert odd in {400, 500, None}
    # A 1 KB body nested 500 deep: its RecursionError's traceback once took the client's
    # event loop for over a minute to write, half a million lines, keys in them.
    deep = await status_of(
        http,
        "POST",
        f"{PREFIX}/orchestrators/hello_cities",
        params=start,
        content=b"[" * 500 + b"]" * 500,
        headers={"content-type": "application/json"},
    )
    assert deep in {400, 500, None}
    healthy = await http.get("/healthz", timeout=2.0)
    assert healthy.status_code == 200
    terminated = await http.post(f"{PREFIX}/instances/{waiting}/terminate", params=management)
    assert terminated.status_code == 202, terminated.text


async def status_of(http: httpx.AsyncClient, method: str, url: str, **request: Any) -> int | None:
    """The status a request is answered with, or ``None`` when the connection is dropped:
    after an unexpected error's 500, uvicorn closes the connection, at times before the
    answer is read (so the request goes on a connection of its own)."""
    try:
        async with httpx.AsyncClient(base_url=http.base_url, timeout=http.timeout) as own:
            return (await own.request(method, url, **request)).status_code
    except httpx.TransportError:
        return None


async def failing_functions(http: httpx.AsyncClient, deployment: Deployment) -> None:
    keys = deployment.secrets
    management = {"x-functions-key": keys.management_key}
    # Each input holds a password the services know, which their failures then quote: a
    # secret in an error message. (The access keys are the client's alone: the other
    # services cannot know them, so no input here carries one past the client.)
    for orchestrator, given in (
        ("calls_failing_activity", f"the password is {keys.database.password}"),
        ("failing_orchestrator", {"broker password": keys.broker.password}),
    ):
        started = await http.post(
            f"{PREFIX}/orchestrators/{orchestrator}", params={"code": keys.start_key}, json=given
        )
        assert started.status_code == 202, started.text
        status_url = started.json()["statusQueryGetUri"]
        async with httpx.AsyncClient(timeout=10.0, headers=management) as polling:
            ended = await poll_until_ended(polling, status_url.split("?")[0])
        assert ended.json()["runtimeStatus"] == "Failed", ended.text


async def invalid_messages(deployment: Deployment) -> None:
    """A message no service can read, on a partition queue and an activity queue; each is
    dead-lettered with a warning that quotes what was wrong with it."""
    topology, keys = deployment.topology, deployment.secrets
    queues = [topology.partition_queue(0), topology.activity_queue("echo")]
    body = f'{{"envelope": {{"password": "{keys.broker.password}"}}}}'.encode()
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)

        async def dead_lettered() -> bool:
            for queue in queues:
                dlq = await channel.declare_queue(topology.dead_letter_queue(queue), passive=True)
                assert dlq.declaration_result.message_count, f"nothing in {queue}'s DLQ yet"
            return True

        await deployment.eventually(dead_lettered)
    finally:
        await connection.close()


async def database_outage(deployment: Deployment) -> None:
    """The services' role may not log in and their connections are cut, while a request and
    a start message arrive; then the role may log in again and the start is handled."""
    role = deployment.secrets.database.user
    keys = deployment.secrets
    instance_id = unique("outage-")
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        async with httpx.AsyncClient(base_url=deployment.base_url, timeout=10.0) as http:
            during = await status_of(
                http,
                "GET",
                f"{PREFIX}/instances/{instance_id}",
                params={"code": keys.management_key},
            )
            assert during in {500, 503, None}
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            start = messages.start(instance_id, "hello_cities", ["Oslo"])
            exchange, routing_key = deployment.topology.orchestrator_route(instance_id)
            await (await channel.get_exchange(exchange)).publish(
                aio_pika.Message(start.model_dump_json().encode(), type=start.envelope.type),
                routing_key=routing_key,
            )
        finally:
            await connection.close()

        def orchestrator_failed() -> bool:
            assert "message.failed" in deployment.group["orchestrator"].log_path.read_text()
            return True

        await deployment.eventually(orchestrator_failed)
    finally:
        await admin.execute(f'ALTER ROLE "{role}" LOGIN')
        await admin.close()

    async def completed() -> bool:
        status = await deployment.pool.fetchval(
            "SELECT status FROM instances WHERE instance_id = $1", instance_id
        )
        assert status == "Completed", status
        return True

    await deployment.eventually(completed)
