"""The observability port's routes and readiness, on a real socket: what ``/livez``,
``/readyz`` and ``/metrics`` answer, how a service's checks become an answer, and how a
supervisor's answer is made of its processes' reports (ADR 30)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from services.common.observability_port import (
    ObservabilityPort,
    PortInUseError,
    multiprocess_metrics,
    registry_metrics,
)
from services.common.readiness import (
    OK,
    NotReadyError,
    Readiness,
    ReadinessMonitor,
    gather_reports,
    report_path,
    write_report,
)
from tests.helpers.waiting import assert_eventually

PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("probe_requests", "Requests the probe saw.", registry=registry).inc(3)
    return registry


class Served:
    """A port on 127.0.0.1 answering whatever readiness the test sets."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.readiness = Readiness({"database": OK, "broker": OK})
        self.port = ObservabilityPort(
            "127.0.0.1",
            0,
            readiness=lambda: self.readiness,
            metrics=registry_metrics(registry),
            setting="DF_TEST_PORT",
        )
        self.port.start()
        host, port = self.port.address
        self.url = f"http://{host}:{port}"


@pytest.fixture
def served(registry: CollectorRegistry) -> Iterator[Served]:
    served = Served(registry)
    yield served
    served.port.close()


def test_livez_answers_while_the_process_serves(served: Served) -> None:
    served.readiness = Readiness.not_ready("starting")

    response = httpx.get(f"{served.url}/livez")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_answers_200_with_every_check_when_all_pass(served: Served) -> None:
    response = httpx.get(f"{served.url}/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": OK, "broker": OK}}


def test_readyz_answers_503_naming_the_check_that_fails(served: Served) -> None:
    served.readiness = Readiness({"database": OK, "broker": "connection refused"})

    response = httpx.get(f"{served.url}/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "connection refused"
    assert response.json()["status"] == "not ready"


def test_metrics_answer_the_registry_in_prometheus_text_format(served: Served) -> None:
    response = httpx.get(f"{served.url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == PLAIN_0_0_4
    assert "probe_requests_total 3.0" in response.text


def test_metrics_answer_openmetrics_to_a_scraper_that_asks_for_it(served: Served) -> None:
    response = httpx.get(
        f"{served.url}/metrics", headers={"Accept": "application/openmetrics-text"}
    )

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_other_paths_are_404_and_other_methods_405(served: Served) -> None:
    missing = httpx.get(f"{served.url}/dashboard")
    posted = httpx.post(f"{served.url}/readyz")

    assert missing.status_code == 404
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET")


def test_a_port_in_use_fails_at_once_naming_the_setting(served: Served) -> None:
    host, port = served.port.address

    with pytest.raises(PortInUseError, match=f"{port} is already in use; set DF_TEST_PORT"):
        ObservabilityPort(
            host,
            port,
            readiness=lambda: served.readiness,
            metrics=registry_metrics(),
            setting="DF_TEST_PORT",
        )


def test_port_0_binds_a_free_port_and_says_which(registry: CollectorRegistry) -> None:
    port = ObservabilityPort(
        "127.0.0.1",
        0,
        readiness=lambda: Readiness({}),
        metrics=registry_metrics(registry),
        setting="DF_TEST_PORT",
    )
    try:
        bound = port.address[1]
        assert bound > 0
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", bound))
    finally:
        port.close()


async def _ok() -> None:
    return None


async def _no_consumer() -> None:
    raise NotReadyError("no consumer on the partitions it holds: [3]")


async def _refused() -> None:
    raise ConnectionRefusedError()


async def _hangs() -> None:
    await asyncio.Event().wait()


async def test_a_monitor_names_each_failing_check_and_why() -> None:
    monitor = ReadinessMonitor(timeout=0.1)

    readiness = await monitor.evaluate(
        {"database": _ok, "consumers": _no_consumer, "broker": _refused, "slow": _hangs}
    )

    assert not readiness.ready
    assert readiness.checks == {
        "database": OK,
        "consumers": "no consumer on the partitions it holds: [3]",
        "broker": "ConnectionRefusedError()",
        "slow": "no answer within the check's time-out",
    }


async def test_a_monitor_is_not_ready_before_its_first_evaluation_and_once_stopping() -> None:
    monitor = ReadinessMonitor(interval=0.05)
    stopping = asyncio.Event()
    assert monitor.latest().checks == {"service": "starting"}

    running = asyncio.create_task(monitor.run({"database": _ok}, stopping))
    await assert_eventually(lambda: monitor.latest().ready)
    stopping.set()
    await running

    assert monitor.latest().checks == {"service": "stopping"}


async def test_a_monitor_whose_loop_stopped_evaluating_says_so() -> None:
    monitor = ReadinessMonitor(interval=60, stale_after=0.2)
    stopping = asyncio.Event()
    running = asyncio.create_task(monitor.run({"database": _ok}, stopping))
    await assert_eventually(lambda: monitor.latest().ready)

    await assert_eventually(lambda: not monitor.latest().ready)

    assert "no readiness evaluated" in monitor.latest().checks["service"]
    stopping.set()
    await running


async def test_a_supervised_monitor_writes_its_report_for_the_supervisor(tmp_path: Path) -> None:
    path = report_path(tmp_path, 1)
    monitor = ReadinessMonitor(path, interval=0.05)
    stopping = asyncio.Event()
    running = asyncio.create_task(monitor.run({"broker": _refused}, stopping))

    await assert_eventually(lambda: path.exists())
    stopping.set()
    await running

    assert json.loads(path.read_text())["checks"] == {"service": "stopping"}


def test_a_supervisor_is_ready_only_when_every_process_is(tmp_path: Path) -> None:
    paths = [report_path(tmp_path, index) for index in range(2)]
    write_report(paths[0], Readiness({"database": OK, "broker": OK}))
    write_report(paths[1], Readiness({"database": OK, "broker": "connection lost"}))

    readiness = gather_reports(paths)

    assert not readiness.ready
    assert readiness.checks == {"database": OK, "broker": "process 1: connection lost"}
    assert readiness.body()["processes"] == {
        "0": {"database": OK, "broker": OK},
        "1": {"database": OK, "broker": "connection lost"},
    }
    write_report(paths[1], Readiness({"database": OK, "broker": OK}))
    assert gather_reports(paths).ready


def test_a_process_that_has_not_reported_or_not_lately_is_not_ready(tmp_path: Path) -> None:
    paths = [report_path(tmp_path, index) for index in range(2)]
    write_report(paths[0], Readiness({"database": OK}))
    assert gather_reports(paths).checks["service"] == "process 1: starting"

    paths[1].write_text(json.dumps({"at": time.time() - 10, "checks": {"database": OK}}))

    assert gather_reports(paths).checks["service"] == "process 1: no readiness report for 10 s"


def test_a_supervisors_scrape_sums_the_counters_of_every_process(tmp_path: Path) -> None:
    program = (
        "from prometheus_client import Counter\n"
        "Counter('probe_batches', 'Batches.', ['outcome']).labels('committed').inc(2)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", program], env=env, check=True)

    body, content_type = multiprocess_metrics(tmp_path)("")

    assert content_type == PLAIN_0_0_4
    assert 'probe_batches_total{outcome="committed"} 4.0' in body.decode()


@pytest.mark.parametrize(
    ("service", "processes"), [("activities", "1"), ("orchestrator", "1"), ("orchestrator", "2")]
)
def test_a_service_whose_port_is_in_use_stops_at_once_naming_the_setting(
    service: str, processes: str
) -> None:
    variable = f"DF_{service.upper()}_OBSERVABILITY_PORT"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **os.environ,
            variable: str(taken.getsockname()[1]),
            "DF_ORCHESTRATOR_PROCESSES": processes,
            # Nothing listens there: the port must fail the start before any connection.
            "DF_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "DF_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        }
        started = subprocess.run(
            [sys.executable, "-m", f"services.{service}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert started.returncode == 2
    assert f"is already in use; set {variable}" in started.stdout + started.stderr
