"""Celery under the workloads: RabbitMQ broker (a vhost of its own), Postgres result backend
(Celery's database backend through SQLAlchemy and psycopg, in a database of its own), and a
``celery worker`` process started and stopped here.

Idiomatic Celery: a chain of task signatures for sequences, ``chord(group, callback)`` for
fan-out/fan-in. Celery has no durable waiting on external events and no durable timers, so
W4, W5 and W7 are reported as not measured, as is W6 (no replay).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import Endpoints, Sizes
from bench.measure import (
    best_round,
    busy_cpu_seconds,
    cpu_ms_per,
    ms,
    percentile,
    unique_name,
)
from bench.peers.common import arguments, check, log, run_workloads, unavailable, versions

PACKAGES = ("celery", "kombu", "sqlalchemy", "psycopg")
CITIES = ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]
WORKER_CONCURRENCY = 4
NOT_MEASURED = {
    "W4": "Celery has no durable wait for an external event inside a running workflow",
    "W5": "Celery has no durable timers (countdown/ETA tasks wait in the worker's memory)",
    "W6": "Celery does not replay histories",
    "W7": "Celery has no durable wait for an external event inside a running workflow",
    "W8": "replicas of our orchestrator, one killed: ours alone",
    "W9": "Celery has no durable entities (stateful objects with one-at-a-time operations)",
}

try:
    import psycopg
    from celery import chain, chord, group
except ImportError as error:
    IMPORT_ERROR: ImportError | None = error
else:
    IMPORT_ERROR = None


class Backend:
    """Reads the result backend's table (``celery_taskmeta``) directly."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)

    def done_times(self, task_ids: list[str]) -> dict[str, float]:
        rows = self.connection.execute(
            "SELECT task_id, date_done FROM celery_taskmeta WHERE task_id = ANY(%s) "
            "AND status = 'SUCCESS'",
            (task_ids,),
        ).fetchall()
        return {task_id: _epoch(done) for task_id, done in rows}


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _chain_ids(result: Any) -> list[str]:
    ids = []
    while result is not None:
        ids.append(result.id)
        result = result.parent
    return ids[::-1]


BACKEND: Backend


def stored_result(task_id: str) -> Any:
    """A finished task's result as the backend stored it (``AsyncResult.get`` polls every
    half second, which would be counted in the workload's time)."""
    from bench.peers.celery_tasks import app

    return app.backend.get_task_meta(task_id)["result"]


def wait_done(task_ids: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        done = BACKEND.done_times(task_ids)
        if len(done) == len(task_ids) or time.monotonic() > deadline:
            return done
        # The times are the recorded ones, so a slow poll of a batch changes nothing but the
        # CPU this harness takes from the worker (as for ours: bench.ours.run_hello_batch).
        time.sleep(0.005 if len(task_ids) == 1 else 0.5)


def w1(sizes: Sizes) -> dict[str, Any]:
    from bench.peers.celery_tasks import noop

    steps = sizes.w1_steps
    started = time.time()
    result = chain(*(noop.si(i) for i in range(steps))).apply_async()
    ids = _chain_ids(result)
    done = wait_done(ids, 60 + steps)
    times = [done[i] for i in ids if i in done]
    wall = max(times) - started
    step_seconds = [b - a for a, b in itertools.pairwise(times)]
    return {
        "metrics": {
            "activities_per_s": round(steps / wall, 1),
            "wall_s": round(wall, 3),
            "step_p50_ms": ms(percentile(step_seconds, 50)),
            "step_p99_ms": ms(percentile(step_seconds, 99)),
        },
        "checks": [
            check(f"all {steps} tasks succeeded", len(done) == steps, len(done)),
            check("the last returned its input", stored_result(result.id) == steps - 1),
        ],
    }


def hello_batch(count: int) -> tuple[float, list[Any], int, float]:
    """The chains' wall time, outputs and tasks done, and the machine's busy CPU seconds
    until all were done (reading the outputs back afterwards is left out)."""
    from bench.peers.celery_tasks import say_hello

    busy_before = busy_cpu_seconds()
    started = time.time()
    results = [chain(*(say_hello.si(city) for city in CITIES)).apply_async() for _ in range(count)]
    ids = [task_id for r in results for task_id in _chain_ids(r)]
    done = wait_done(ids, 120 + count)
    busy = busy_cpu_seconds() - busy_before
    last = max(done.values()) - started
    outputs = [stored_result(r.id) for r in results]
    return last, outputs, len(done), busy


def w2(sizes: Sizes) -> dict[str, Any]:
    count = sizes.w2_instances
    rounds, checks = [], []
    for _ in range(sizes.w2_rounds):
        wall, outputs, succeeded, busy = hello_batch(count)
        rounds.append(
            {
                "orchestrations_per_s": round(count / wall, 1),
                "wall_s": round(wall, 3),
                "cpu_ms_per_orchestration": cpu_ms_per(busy, count),
            }
        )
        checks += [
            check("every task of every chain succeeded", succeeded == 5 * count, succeeded),
            check("every chain ends with Cairo", all(o == "Hello Cairo!" for o in outputs)),
        ]
    return {"metrics": best_round(rounds, "orchestrations_per_s"), "checks": checks}


def w3(sizes: Sizes) -> dict[str, Any]:
    from bench.peers.celery_tasks import noop, total

    metrics: dict[str, float] = {}
    checks = []
    for count in [c for c in sizes.w3_fan_out if c <= sizes.w3_peer_max]:
        started = time.time()
        result = chord(group(noop.s(i) for i in range(count)), total.s()).apply_async()
        done = wait_done([result.id], 120 + count / 5)
        wall = done[result.id] - started
        metrics[f"fan_out_{count}_wall_s"] = round(wall, 3)
        metrics[f"fan_out_{count}_activities_per_s"] = round(count / wall, 1)
        summed = stored_result(result.id)
        checks.append(check(f"chord of {count} summed", summed == count * (count - 1) // 2))
    return {"metrics": metrics, "checks": checks}


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", *arguments], check=True, capture_output=True, timeout=60)


def broker_url(amqp_url: str, vhost: str | None) -> str:
    base = amqp_url.rstrip("/")
    return f"{base}/{vhost}" if vhost else f"{base}//"


def start_worker(env: dict[str, str], queue: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peers.celery_tasks",
        "worker",
        "--pool=prefork",
        f"--concurrency={WORKER_CONCURRENCY}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
        "-Q",
        queue,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def main() -> None:
    sizes, only, output = arguments()
    if IMPORT_ERROR is not None:
        reason = f"celery is not installed ({IMPORT_ERROR}); `make bench` installs it (.[bench])"
        unavailable(output, reason, PACKAGES)
        return
    endpoints = Endpoints.from_environment()
    database = unique_name("bench_celery_")
    backend_url = endpoints.database_url(database).replace("postgresql://", "postgresql+psycopg://")
    wanted_vhost = unique_name("bench-celery-")
    vhost: str | None = wanted_vhost
    queue = unique_name("bench.celery.")
    try:
        rabbitmqctl("add_vhost", wanted_vhost)
        rabbitmqctl("set_permissions", "-p", wanted_vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError):
        log("celery", "rabbitmqctl unavailable: using the default vhost and a unique queue")
        vhost = None
    with psycopg.connect(endpoints.admin_database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        **os.environ,
        "BENCH_CELERY_BROKER": broker_url(endpoints.amqp_url, vhost),
        "BENCH_CELERY_BACKEND": f"db+{backend_url}",
        "BENCH_CELERY_QUEUE": queue,
    }
    os.environ.update(env)
    result: dict[str, Any] = {
        "status": "ok",
        "versions": versions(*PACKAGES),
        "config": {
            "broker": f"RabbitMQ vhost {vhost or '/'}, classic durable queue {queue}",
            "result_backend": f"database backend (SQLAlchemy + psycopg), database {database}",
            "worker": f"celery worker --pool=prefork --concurrency={WORKER_CONCURRENCY}",
            "durability": "persistent messages, confirm_publish, acks_late",
        },
    }
    worker = None
    global BACKEND
    try:
        from bench.peers.celery_tasks import app

        app.backend.get_task_meta("create-the-tables")
        worker = start_worker(env, queue)
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the celery worker did not start")
        BACKEND = Backend(endpoints.database_url(database))
        result["workloads"] = run_workloads(
            "celery", {"W1": w1, "W2": w2, "W3": w3}, NOT_MEASURED, sizes, only
        )
    except Exception as error:
        result["status"] = "failed"
        result["reason"] = repr(error)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        with contextlib.suppress(Exception):
            from bench.peers.celery_tasks import app

            app.close()
        with psycopg.connect(endpoints.admin_database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if vhost and shutil.which("rabbitmqctl"):
            with contextlib.suppress(subprocess.SubprocessError):
                rabbitmqctl("delete_vhost", vhost)
        Path(output).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
