"""What the activities service needs to do its work (``/readyz``, ADR 30): the broker, and a
consumer on every activity queue. Not the database: it reads it only at start."""

from __future__ import annotations

from durable.broker import Publisher
from services.activities.worker import ActivityWorker
from services.common.consuming import ConnectionSupervisor
from services.common.readiness import Check, NotReadyError
from services.common.readiness_checks import broker_check


def activities_checks(
    consuming: ConnectionSupervisor, publisher: Publisher, worker: ActivityWorker
) -> dict[str, Check]:
    async def consumers() -> None:
        missing = worker.unconsumed()
        if missing:
            raise NotReadyError(f"no consumer for the activities {missing}")

    return {"broker": broker_check(consuming, publisher), "consumers": consumers}
