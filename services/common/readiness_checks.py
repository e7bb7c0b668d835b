"""The readiness checks every service with consumers shares: the database answers, the broker
connections are up (``services.common.readiness``)."""

from __future__ import annotations

import asyncpg

from durable.broker import Publisher
from services.common.consuming import ConnectionSupervisor
from services.common.readiness import CHECK_TIMEOUT_SECONDS, Check, NotReadyError


def database_check(pool: asyncpg.Pool) -> Check:
    """The pool gives a connection that answers ``SELECT 1``."""

    async def database() -> None:
        await pool.fetchval("SELECT 1")

    return database


def broker_check(consuming: ConnectionSupervisor, publisher: Publisher) -> Check:
    """The consuming connection is attached, and the publisher has an open channel (it
    connects again if it must, as its next publish would)."""

    async def broker() -> None:
        if not consuming.attached.is_set():
            raise NotReadyError("the consuming connection is down; connecting again")
        await publisher.check(CHECK_TIMEOUT_SECONDS)

    return broker
