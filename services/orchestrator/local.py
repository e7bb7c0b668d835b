"""Local activities: run by the orchestrator itself, without the broker.

An activity registered with ``@app.activity(local=True)`` is scheduled like any other: its
``TaskScheduled`` event and its task message are committed together, the message in the
outbox. The partition consumer then runs it here instead of publishing that message, and
feeds the result back into the partition as if it had come from the activity service; once
the result is recorded, the outbox row is deleted. A call costs one commit and no broker
round trip. If this process dies, or loses the partition, before the result is recorded, the
row is still there: the outbox sweeper publishes it after its grace period and the activity
service runs the task (activities run at least once). See ADR 13.

Plain functions without a time-out go further: the handler takes them out of a batch before
its commit (``take_inline``), runs them and steps their instances with the results, so a
chain of them is written by one commit (ADR 14).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from contracts import ActivityTaskMessage, OrchestratorMessage, Topology
from durable.app import ActivityDefinition, FunctionApp
from durable.broker import OutgoingMessage
from durable.store.outbox import OutboxRecord
from services.common.activity_runner import ActivityRunner

InlineTask = tuple[ActivityDefinition, ActivityTaskMessage]


class LocalActivities:
    """Recognises the task messages of local activities and runs them."""

    def __init__(self, functions: FunctionApp, topology: Topology, *, threads: int) -> None:
        self._by_route: dict[tuple[str, str], ActivityDefinition] = {
            topology.activity_route(name): definition
            for name, definition in functions.activities.items()
            if definition.local
        }
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="local")

    def split(
        self, records: Sequence[OutboxRecord]
    ) -> tuple[list[OutboxRecord], list[tuple[OutboxRecord, ActivityDefinition]]]:
        """The records to publish, and the local activities' tasks to run here."""
        if not self._by_route:
            return list(records), []
        publish: list[OutboxRecord] = []
        local: list[tuple[OutboxRecord, ActivityDefinition]] = []
        for record in records:
            definition = self._definition_of(record.message)
            if definition is not None:
                local.append((record, definition))
            else:
                publish.append(record)
        return publish, local

    def take_inline(
        self, messages: Sequence[OutgoingMessage], instances: Collection[str]
    ) -> tuple[list[OutgoingMessage], list[InlineTask]]:
        """Split a batch's messages before its commit: the tasks to run now, in the batch
        (local activities that are plain functions without a time-out, of ``instances``), and
        the messages to commit. See ADR 14."""
        if not self._by_route:
            return list(messages), []
        keep: list[OutgoingMessage] = []
        inline: list[InlineTask] = []
        for message in messages:
            definition = self._definition_of(message)
            if definition is not None and not definition.is_async:
                task = ActivityTaskMessage.model_validate_json(message.body)
                if _plain(definition, task) and task.envelope.instance_id in instances:
                    inline.append((definition, task))
                    continue
            keep.append(message)
        return keep, inline

    async def run_inline(self, tasks: Sequence[InlineTask]) -> list[OrchestratorMessage]:
        """Run tasks taken by ``take_inline``, one after the other in one thread; each one's
        result, addressed to its instance."""
        return await ActivityRunner(self._threads, _no_report).run_in_one_thread(tasks)

    async def run(
        self,
        tasks: Sequence[tuple[OutboxRecord, ActivityDefinition]],
        report_started: Callable[[OrchestratorMessage], Awaitable[None]],
    ) -> list[tuple[OutboxRecord, OrchestratorMessage]]:
        """Run one batch's tasks; each with its result, addressed to its instance.

        Plain functions without a time-out run one after the other in one thread (one hop
        between threads for the batch); ``async def`` ones, and those with a time-out, each on
        their own, concurrently.
        """
        runner = ActivityRunner(self._threads, report_started)
        together: list[tuple[OutboxRecord, ActivityDefinition, ActivityTaskMessage]] = []
        alone: list[tuple[OutboxRecord, ActivityDefinition, ActivityTaskMessage]] = []
        for record, definition in tasks:
            task = ActivityTaskMessage.model_validate_json(record.message.body)
            (together if _plain(definition, task) else alone).append((record, definition, task))
        in_one_thread, each_alone = await asyncio.gather(
            runner.run_in_one_thread([(definition, task) for _, definition, task in together]),
            asyncio.gather(*(runner.run(definition, task) for _, definition, task in alone)),
        )
        records = [record for record, _, _ in together + alone]
        return list(zip(records, [*in_one_thread, *each_alone], strict=True))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def is_local(self, message: OutgoingMessage) -> bool:
        """Whether ``message`` is the task of a local activity (run here, never published
        unless this process fails to run it)."""
        return self._definition_of(message) is not None

    def _definition_of(self, message: OutgoingMessage) -> ActivityDefinition | None:
        """The local activity whose task ``message`` is, if it is one."""
        if message.message_type != "ActivityTask":
            return None
        return self._by_route.get((message.exchange, message.routing_key))


def _plain(definition: ActivityDefinition, task: ActivityTaskMessage) -> bool:
    """A plain function without a time-out: run with others in one thread, or inline."""
    return not definition.is_async and task.body.timeout_seconds is None


async def _no_report(started: OrchestratorMessage) -> None:
    """Tasks run inline have no time-out, so they report no start."""
