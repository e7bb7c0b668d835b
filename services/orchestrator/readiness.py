"""What the orchestrator needs to do its work (``/readyz``, ADR 30): the database, the broker,
and a consumer on every partition it holds a lease on, as a member the others still count."""

from __future__ import annotations

import asyncpg

from durable.broker import Publisher
from services.common.consuming import ConnectionSupervisor
from services.common.readiness import Check, NotReadyError
from services.common.readiness_checks import broker_check, database_check
from services.orchestrator.assignments import Assignments
from services.orchestrator.leases import LeaseKeeper


def orchestrator_checks(
    pool: asyncpg.Pool,
    consuming: ConnectionSupervisor,
    publisher: Publisher,
    keeper: LeaseKeeper,
    assignments: Assignments,
) -> dict[str, Check]:
    async def consumers() -> None:
        if not keeper.in_touch:
            raise NotReadyError(
                f"not a member: no lease round reached the database for {keeper.lease_seconds} s"
            )
        missing = assignments.unconsumed(keeper.held)
        if missing:
            raise NotReadyError(f"no consumer on the partitions it holds: {missing}")

    return {
        "database": database_check(pool),
        "broker": broker_check(consuming, publisher),
        "consumers": consumers,
    }
