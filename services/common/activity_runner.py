"""Running one activity task: the function called with its input, its outcome as a message.

Shared by the activity service and by the orchestrator, which runs local activities itself
(``@app.activity(local=True)``, ADR 13). ``async def`` activities run on the event loop,
plain functions in a thread pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog

from contracts import (
    ActivityTaskMessage,
    Envelope,
    FailureDetails,
    OrchestratorMessage,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    deterministic_message_id,
)
from contracts.typed import BoundaryError
from contracts.values import to_json_value
from durable.activity import ActivityContext
from durable.app import ActivityDefinition

log = structlog.get_logger(__name__)


class ActivityTimeoutError(TimeoutError):
    """The activity ran past its start-to-close time-out (the error type orchestrators see)."""

    def __init__(self, activity: str, timeout_seconds: float) -> None:
        super().__init__(
            f"{activity} timed out: not finished {timeout_seconds:g} s after it started"
        )


class ActivityRunner:
    """Runs tasks; ``report_started`` sends the ``TaskStarted`` of a task with a time-out."""

    def __init__(
        self,
        threads: ThreadPoolExecutor,
        report_started: Callable[[OrchestratorMessage], Awaitable[None]],
    ) -> None:
        self._threads = threads
        self._report_started = report_started

    async def run(
        self, definition: ActivityDefinition, message: ActivityTaskMessage
    ) -> OrchestratorMessage:
        """Run the task; its ``TaskCompleted`` or ``TaskFailed``, addressed to its instance."""
        envelope, task = message.envelope, message.body
        execution_id = envelope.execution_id or ""
        context = ActivityContext(
            instance_id=envelope.instance_id,
            execution_id=execution_id,
            task_id=task.task_scheduled_id,
            name=task.name,
            attempt=task.attempt,
        )
        event: TaskCompleted | TaskFailed
        if task.timeout_seconds is not None:
            await self._report_started(started_message(message))
        try:
            arguments = definition.arguments(task.input, context)
            result = await self._call(definition, arguments, task.timeout_seconds)
            result = definition.checked_output(result)
            output = to_json_value(result, f"the output of activity {task.name!r}")
            event = TaskCompleted(
                timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id, result=output
            )
            log.debug("activity.completed")
        except Exception as error:
            failure = FailureDetails.from_exception(error)
            if isinstance(error, BoundaryError):
                # A value of the wrong shape will not change on a retry.
                failure = failure.model_copy(update={"is_non_retriable": True})
            event = TaskFailed(
                timestamp=datetime.now(UTC),
                task_scheduled_id=task.task_scheduled_id,
                failure=failure,
            )
            log.info("activity.failed", error=f"{type(error).__name__}: {error}")
        return OrchestratorMessage(
            envelope=Envelope(
                message_id=deterministic_message_id(
                    envelope.instance_id, execution_id, "result", task.task_scheduled_id
                ),
                instance_id=envelope.instance_id,
                execution_id=envelope.execution_id,
                correlation_id=envelope.correlation_id,
                type=event.event_type,
                sent_at=datetime.now(UTC),
            ),
            body=event,
        )

    async def _call(
        self, definition: ActivityDefinition, arguments: dict[str, Any], timeout: float | None
    ) -> Any:
        """Run the function; past ``timeout`` seconds, give up with ``ActivityTimeoutError``.

        An ``async def`` activity is cancelled at the time-out; a plain function cannot be
        stopped, so its thread runs on and its result is discarded.
        """
        running: asyncio.Future[Any]
        if definition.is_async:
            running = asyncio.ensure_future(definition.function(**arguments))
        else:
            call = functools.partial(
                contextvars.copy_context().run, definition.function, **arguments
            )
            running = asyncio.get_running_loop().run_in_executor(self._threads, call)
        if timeout is None:
            return await running
        done, _ = await asyncio.wait({running}, timeout=timeout)
        if not done:
            running.cancel()
            raise ActivityTimeoutError(f"activity {definition.name!r}", timeout)
        return running.result()


def started_message(message: ActivityTaskMessage) -> OrchestratorMessage:
    """The message that tells the orchestrator a task's start-to-close clock has started."""
    envelope, task = message.envelope, message.body
    return OrchestratorMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(
                envelope.instance_id,
                envelope.execution_id or "",
                "started",
                task.task_scheduled_id,
            ),
            instance_id=envelope.instance_id,
            execution_id=envelope.execution_id,
            correlation_id=envelope.correlation_id,
            type="TaskStarted",
            sent_at=datetime.now(UTC),
        ),
        body=TaskStarted(timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id),
    )
