"""Running one activity task: the function called with its input, its outcome as a message.

Shared by the activity service and by the orchestrator, which runs local activities itself
(``@app.activity(local=True)``, ADR 13). ``async def`` activities run on the event loop,
plain functions in a thread pool: one task at a time, or a batch of them on as few threads
as they need.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import JsonValue

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
from contracts.limits import ValueRefusedError
from contracts.typed import BoundaryError
from contracts.values import to_json_value
from durable.activity import ActivityContext
from durable.app import ActivityDefinition
from services.common import metrics
from services.common.thread_batches import ThreadBatch
from services.common.tracing import activity_span, failed

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
        task = message.body
        with activity_span(message) as span:
            if task.timeout_seconds is not None:
                await self._report_started(started_message(message))
            began = time.perf_counter()
            outcome: JsonValue | Exception
            try:
                arguments = definition.arguments(task.input, _context(message))
                result = await self._call(definition, arguments, task.timeout_seconds)
                outcome = _output(definition, result)
            except Exception as error:
                failed(span, error)
                outcome = error
            metrics.activity_executed(definition.name, time.perf_counter() - began, outcome)
            return _outcome(message, outcome)

    async def run_in_one_thread(
        self, tasks: Sequence[tuple[ActivityDefinition, ActivityTaskMessage]]
    ) -> list[OrchestratorMessage]:
        """Run plain-function tasks without a time-out one after the other in one thread: a
        single hop between threads for all of them, which for short tasks costs more than the
        tasks themselves."""
        if not tasks:
            return []

        def run_all() -> list[JsonValue | Exception]:
            return [_call_plain(definition, message) for definition, message in tasks]

        call = functools.partial(contextvars.copy_context().run, run_all)
        outcomes = await asyncio.get_running_loop().run_in_executor(self._threads, call)
        return [
            _outcome(message, outcome)
            for (_, message), outcome in zip(tasks, outcomes, strict=True)
        ]

    def start_batch(
        self,
        definition: ActivityDefinition,
        messages: Sequence[ActivityTaskMessage],
        slots: asyncio.Semaphore | None = None,
    ) -> list[asyncio.Future[OrchestratorMessage]]:
        """Start plain-function tasks without a time-out (``runs_in_batches``) on as few
        threads as they need, each thread holding one of ``slots`` while it runs tasks
        (``services.common.thread_batches``); a future per task, for its result message."""

        def call(message: ActivityTaskMessage) -> Callable[[], OrchestratorMessage]:
            def run() -> OrchestratorMessage:
                with structlog.contextvars.bound_contextvars(**log_context(definition, message)):
                    return _outcome(message, _call_plain(definition, message))

            return run

        batch = ThreadBatch(self._threads, [call(m) for m in messages], slots=slots)
        return batch.futures

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


def runs_in_batches(definition: ActivityDefinition, message: ActivityTaskMessage) -> bool:
    """Whether ``ActivityRunner.start_batch`` can run the task: a plain function, no
    time-out (whose clock needs a ``TaskStarted`` reported first)."""
    return not definition.is_async and message.body.timeout_seconds is None


def log_context(definition: ActivityDefinition, message: ActivityTaskMessage) -> dict[str, str]:
    """What every log line about running the task carries."""
    envelope = message.envelope
    return {
        "instance_id": envelope.instance_id,
        "message_id": str(envelope.message_id),
        "correlation_id": envelope.correlation_id,
        "activity": definition.name,
    }


def _call_plain(
    definition: ActivityDefinition, message: ActivityTaskMessage
) -> JsonValue | Exception:
    """Call a plain-function activity in this thread: its output, or what it raised."""
    with activity_span(message) as span:
        began = time.perf_counter()
        outcome: JsonValue | Exception
        try:
            arguments = definition.arguments(message.body.input, _context(message))
            outcome = _output(definition, definition.function(**arguments))
        except Exception as error:
            failed(span, error)
            outcome = error
        metrics.activity_executed(definition.name, time.perf_counter() - began, outcome)
        return outcome


def _context(message: ActivityTaskMessage) -> ActivityContext:
    envelope, task = message.envelope, message.body
    return ActivityContext(
        instance_id=envelope.instance_id,
        execution_id=envelope.execution_id or "",
        task_id=task.task_scheduled_id,
        name=task.name,
        attempt=task.attempt,
    )


def _output(definition: ActivityDefinition, result: Any) -> JsonValue:
    checked = definition.checked_output(result)
    return to_json_value(checked, f"the output of activity {definition.name!r}")


def _outcome(message: ActivityTaskMessage, outcome: JsonValue | Exception) -> OrchestratorMessage:
    """The result message: ``TaskFailed`` for an exception, else ``TaskCompleted``."""
    envelope, task = message.envelope, message.body
    event: TaskCompleted | TaskFailed
    if isinstance(outcome, Exception):
        failure = FailureDetails.from_exception(outcome)
        if isinstance(outcome, BoundaryError | ValueRefusedError):
            # A value of the wrong shape, or one that cannot be stored, will not change on a
            # retry.
            failure = failure.model_copy(update={"is_non_retriable": True})
        event = TaskFailed(
            timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id, failure=failure
        )
        log.info("activity.failed", error=f"{type(outcome).__name__}: {outcome}")
    else:
        event = TaskCompleted(
            timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id, result=outcome
        )
        log.debug("activity.completed")
    return OrchestratorMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(
                envelope.instance_id, envelope.execution_id or "", "result", task.task_scheduled_id
            ),
            instance_id=envelope.instance_id,
            execution_id=envelope.execution_id,
            correlation_id=envelope.correlation_id,
            type=event.event_type,
            sent_at=datetime.now(UTC),
        ),
        body=event,
    )


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
