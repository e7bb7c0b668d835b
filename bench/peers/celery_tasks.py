"""The Celery app the benchmark's worker runs: no-op tasks, the Hello cities greeting and a
chord callback. Configured from ``BENCH_CELERY_BROKER`` / ``BENCH_CELERY_BACKEND`` /
``BENCH_CELERY_QUEUE`` (set by ``bench.peers.celery_bench``).

Durability settings chosen to be comparable with our runtime: persistent messages, publisher
confirms, and ``acks_late`` (a task is acknowledged after it ran and its result is stored).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery("bench")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    result_backend=os.environ.get(
        "BENCH_CELERY_BACKEND", "db+postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "bench.celery"),
    broker_transport_options={"confirm_publish": True},
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_extended=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(value: Any) -> Any:
    return value


@app.task
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.task
def total(values: list[int]) -> int:
    return sum(values)
