"""Local activities run by a partition's consumer after the commit that schedules them (ADR 13).

The tasks of local activities among a committed batch's outbox rows are not published: they
run here, and their results (and the start of each task with a time-out) come back into the
partition without a broker, through ``deliver``. Each result's outbox row is deleted once the
result is recorded. Until then the row stays, so a task whose result is lost (this process
dies, loses the partition, or fails to record it) goes to the activity service through the
outbox sweeper: activities run at least once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence

from structlog.typing import FilteringBoundLogger

from contracts import OrchestratorMessage
from durable.app import ActivityDefinition
from durable.store.outbox import OutboxRecord
from services.orchestrator.local import LocalActivities
from services.orchestrator.relay import OutboxRelay


class LocalRuns:
    """Runs one partition's local activity tasks and keeps the outbox row of each result."""

    def __init__(
        self,
        local: LocalActivities,
        relay: OutboxRelay,
        deliver: Callable[[OrchestratorMessage], None],
        log: FilteringBoundLogger,
    ) -> None:
        self._local = local
        self._relay = relay
        self._deliver = deliver
        self._log = log
        self._running: set[asyncio.Task[None]] = set()
        # The outbox row of each result not yet recorded, by the result's message id.
        self._rows: dict[uuid.UUID, int] = {}
        # Results of runs started before a detach are dropped.
        self._generation = 0

    def start(self, records: Sequence[OutboxRecord]) -> list[OutboxRecord]:
        """Start running the local activities' tasks among a committed batch's ``records``;
        return the others, to publish."""
        publish, tasks = self._local.split(records)
        if tasks:
            task = asyncio.create_task(self._run(tasks, self._generation))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return publish

    def recorded(self, messages: Iterable[OrchestratorMessage]) -> None:
        """``messages`` are committed: delete the outbox rows of the results among them."""
        self._relay.discard(
            [
                self._rows.pop(m.envelope.message_id)
                for m in messages
                if m.envelope.message_id in self._rows
            ]
        )

    def not_recorded(self, message_id: uuid.UUID) -> None:
        """The message could not be processed: if it is a result, it is not retried from here;
        its row stays for the sweeper."""
        self._rows.pop(message_id, None)

    def detach(self) -> None:
        """The partition may go elsewhere: results of the runs in flight are dropped, and rows
        not yet recorded are left to the sweeper."""
        self._generation += 1
        self._rows.clear()

    def cancel(self) -> None:
        """Cancel the runs in flight (the service is stopping)."""
        for running in self._running:
            running.cancel()

    async def _run(
        self, tasks: list[tuple[OutboxRecord, ActivityDefinition]], generation: int
    ) -> None:
        async def report_started(started: OrchestratorMessage) -> None:
            if generation == self._generation:
                self._deliver(started)

        try:
            results = await self._local.run(tasks, report_started)
        except Exception:
            # Not an activity failing (that is a TaskFailed result): the tasks could not be
            # run here at all. Their rows stay; the sweeper hands them to the activity service.
            self._log.exception("local_activity.not_run", count=len(tasks))
            return
        if generation != self._generation:
            return
        for record, result in results:
            self._rows[result.envelope.message_id] = record.id
            self._deliver(result)
