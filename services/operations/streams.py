"""Showing an instance's event stream: a table for people or JSON lines, optionally followed
live until the instance ends. Events are read in pages of ``PAGE`` by seq, so a stream of any
length is shown in constant memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from contracts import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionRewound,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerFired,
)
from contracts.history import HISTORY_EVENT_ADAPTER
from contracts.limits import STORED
from durable.store.records import EventLine, event_lines_after, instance_status
from services.operations.session import EXIT_ATTENTION, OperationError

PAGE = 1000
FOLLOW_MIN_SECONDS = 0.2
FOLLOW_MAX_SECONDS = 2.0
_SHOWN_ELSEWHERE = {
    "event_type",
    "timestamp",
    "event_id",
    "name",
    "execution_id",
    "new_execution_id",
}
_REFERENCES = {"task_scheduled_id", "timer_id", "instance_id", "parent"}
HEADER = f"{'SEQ':>6}  {'RECORDED':<27}  {'EVENT':<33}  {'NAME':<24}  {'IDS':<22}  PAYLOAD"


class StreamPrinter:
    """Formats events; remembers action names so results can show what they answer."""

    def __init__(self, as_json: bool, write: Callable[[str], None]) -> None:
        self._as_json = as_json
        self._write = write
        self._names: dict[int, str] = {}
        self._headed = False
        self.shown = 0

    def header(self) -> None:
        if not self._as_json and not self._headed:
            self._write(HEADER)
        self._headed = True

    def event(self, row: EventLine) -> None:
        self.shown += 1
        if self._as_json:
            self._write(row.line)
            return
        event = HISTORY_EVENT_ADAPTER.validate_json(row.payload, context=STORED)
        if isinstance(event, ExecutionStarted):
            self._names.clear()  # action ids restart with each execution
        name = self._name(event)
        recorded = row.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._write(
            f"{row.seq:>6}  {recorded:<27}  {event.event_type:<33}  {_cut(name, 24):<24}  "
            f"{_cut(_ids(event, row.execution_id), 22):<22}  {_payload(event)}".rstrip()
        )

    def _name(self, event: HistoryEvent) -> str:
        match event:
            case ExecutionStarted(name=name) | EventRaised(name=name) | EventSent(name=name):
                return name
            case TaskScheduled(name=name) | SubOrchestrationInstanceCreated(name=name):
                self._names[event.event_id] = name
                return name
            case (
                TaskCompleted(task_scheduled_id=task_id)
                | TaskFailed(task_scheduled_id=task_id)
                | TaskStarted(task_scheduled_id=task_id)
                | SubOrchestrationInstanceCompleted(task_scheduled_id=task_id)
                | SubOrchestrationInstanceFailed(task_scheduled_id=task_id)
            ):
                return self._names.get(task_id, "")
            case _:
                return ""


def _ids(event: HistoryEvent, execution_id: str) -> str:
    match event:
        case ExecutionStarted():
            return f"exec {execution_id[:8]}"
        case ContinueAsNew(new_execution_id=new) | ExecutionRewound(new_execution_id=str(new)):
            return f"→ exec {new[:8]}"
        case (
            TaskCompleted(task_scheduled_id=task_id)
            | TaskFailed(task_scheduled_id=task_id)
            | TaskStarted(task_scheduled_id=task_id)
            | SubOrchestrationInstanceCompleted(task_scheduled_id=task_id)
            | SubOrchestrationInstanceFailed(task_scheduled_id=task_id)
            | TimerFired(timer_id=task_id)
        ):
            return f"→ #{task_id}"
        case SubOrchestrationInstanceCreated(instance_id=child):
            return f"#{event.event_id} child {child}"
        case _ if event.event_id >= 0:
            return f"#{event.event_id}"
        case _:
            return ""


def _payload(event: HistoryEvent) -> str:
    fields = event.model_dump(mode="json", exclude=_SHOWN_ELSEWHERE | _REFERENCES)
    fields = {k: v for k, v in fields.items() if v is not None}
    if isinstance(event, ExecutionStarted) and event.parent is not None:
        fields["parent"] = event.parent.instance_id
    if not fields:
        return ""
    value: Any = next(iter(fields.values())) if len(fields) == 1 else fields
    return _cut(json.dumps(value, ensure_ascii=False, separators=(",", ":")), 100)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


async def show_stream(
    pool: asyncpg.Pool,
    instance_id: str,
    printer: StreamPrinter,
    *,
    follow: bool,
    stopping: asyncio.Event,
) -> bool:
    """Print the stream (and, following, what is appended until the instance ends).

    Returns False when stopped before the instance ended.
    """
    last_seq = 0
    interval = FOLLOW_MIN_SECONDS
    while True:
        # The status first: when it says ended, the events read after it are complete.
        status = await instance_status(pool, instance_id)
        if status is None:
            if last_seq == 0:
                raise OperationError(EXIT_ATTENTION, f"no instance {instance_id!r}")
            raise OperationError(EXIT_ATTENTION, f"instance {instance_id!r} was purged")
        printer.header()
        before = printer.shown
        while True:
            rows = await event_lines_after(pool, instance_id, last_seq, PAGE)
            for row in rows:
                printer.event(row)
                last_seq = row.seq
            if len(rows) < PAGE:
                break
        if not follow or OrchestrationStatus(status).is_terminal:
            return True
        interval = (
            FOLLOW_MIN_SECONDS
            if printer.shown > before
            else min(interval * 1.5, FOLLOW_MAX_SECONDS)
        )
        try:
            await asyncio.wait_for(stopping.wait(), interval)
            return False
        except TimeoutError:
            pass
