"""Reading and purging instances: what needs only the event store, not the broker.

``DurableClient`` builds on ``InstanceQueries``; read-only tools can use it alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from contracts import OrchestrationStatus
from contracts.values import to_json_value
from durable.client.errors import InstanceRunningError
from durable.client.paging import (
    InstancePage,
    decode_continuation_token,
    encode_continuation_token,
)
from durable.store.events import StoredEvent, load_history
from durable.store.queries import (
    InstanceQuery,
    InstanceStatus,
    count_instances,
    ended_instance_ids_txn,
    fetch_instance,
    purge_instances_txn,
    query_instances,
)
from durable.store.registered_functions import (
    protected_events,
    registered_activities,
    registered_entities,
    registered_orchestrators,
)


class InstanceQueries:
    """Status, lists, counts, histories and purges, over the event store's read model."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_status(self, instance_id: str) -> InstanceStatus | None:
        """The instance's status, or ``None`` when there is no such instance."""
        return await fetch_instance(self._pool, instance_id)

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        *,
        instance_id_prefix: str | None = None,
        name: str | None = None,
        custom_status_contains: Any = None,
        top: int = 100,
        continuation_token: str | None = None,
    ) -> InstancePage:
        """Instances matching every given filter, oldest first, ``top`` per page.

        ``name`` is the orchestrator's name; ``custom_status_contains`` keeps instances whose
        custom status contains this JSON value (``{"stage": "manager"}`` matches any custom
        status object with that key and value; see ``InstanceQuery``). Raises ``ValueError``
        for a continuation token this client did not issue.
        """
        query = _query(
            created_time_from,
            created_time_to,
            runtime_status,
            instance_id_prefix=instance_id_prefix,
            name=name,
            custom_status_contains=custom_status_contains,
        )
        after = decode_continuation_token(continuation_token) if continuation_token else None
        rows = await query_instances(self._pool, query, after=after, limit=top + 1)
        page, more = rows[:top], len(rows) > top
        token = encode_continuation_token(page[-1]) if more and page else None
        return InstancePage(page, token)

    async def count_instances(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        *,
        instance_id_prefix: str | None = None,
        name: str | None = None,
        custom_status_contains: Any = None,
    ) -> int:
        """How many instances ``get_status_by`` with the same filters finds, all pages."""
        query = _query(
            created_time_from,
            created_time_to,
            runtime_status,
            instance_id_prefix=instance_id_prefix,
            name=name,
            custom_status_contains=custom_status_contains,
        )
        return await count_instances(self._pool, query)

    async def purge_instance_history(self, instance_id: str) -> int:
        """Delete an ended instance and its history; return 1, or 0 if there was none.

        Raises ``InstanceRunningError`` when the instance has not ended.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            deleted = await purge_instances_txn(connection, [instance_id])
            if not deleted:
                status = await fetch_instance(connection, instance_id)
                if status is not None:
                    raise InstanceRunningError(instance_id, status.runtime_status)
        return deleted

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        *,
        batch_size: int = 500,
    ) -> int:
        """Delete every ended instance matching the filters, ``batch_size`` per transaction
        (so purging millions never holds a long transaction); return how many were deleted."""
        query = _query(created_time_from, created_time_to, runtime_status)
        total = 0
        while True:
            async with self._pool.acquire() as connection, connection.transaction():
                ids = await ended_instance_ids_txn(connection, query, batch_size)
                deleted = await purge_instances_txn(connection, ids)
            total += deleted
            if len(ids) < batch_size:
                return total

    async def get_history(self, instance_id: str) -> list[StoredEvent]:
        """The instance's event stream (every execution), oldest first."""
        return await load_history(self._pool, instance_id)

    async def registered_orchestrators(self) -> set[str]:
        """Names of the orchestrators the deployment's orchestrator services have registered."""
        return await registered_orchestrators(self._pool)

    async def registered_activities(self) -> set[str]:
        """Names of the activities the deployment's services have registered."""
        return await registered_activities(self._pool)

    async def registered_entities(self) -> set[str]:
        """Names of the entities (lower-cased) the deployment's orchestrator services have
        registered."""
        return await registered_entities(self._pool)

    async def protected_events(self, orchestrator: str) -> frozenset[str]:
        """The events (casefolded) that only a management key may raise over HTTP on
        ``orchestrator``'s instances, as its orchestrator service registered them."""
        return await protected_events(self._pool, orchestrator)


def _query(
    created_from: datetime | None,
    created_to: datetime | None,
    statuses: Iterable[OrchestrationStatus] | None,
    *,
    instance_id_prefix: str | None = None,
    name: str | None = None,
    custom_status_contains: Any = None,
) -> InstanceQuery:
    return InstanceQuery(
        created_from=created_from,
        created_to=created_to,
        statuses=tuple(statuses) if statuses is not None else None,
        instance_id_prefix=instance_id_prefix,
        name=name,
        custom_status_contains=to_json_value(custom_status_contains, "the custom status filter"),
    )
