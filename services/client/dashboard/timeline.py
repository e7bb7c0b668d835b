"""An instance's history laid out as a timeline: one bar per activity call, timer,
sub-orchestration, and a mark per event received or sent, placed against the execution's time.

Pure: it takes the events and "now" and answers positions in percent of the execution's span,
which the template turns into plain HTML bars. Only the current execution is laid out (what
came before a ``ContinueAsNew`` is another execution, as Durable Functions shows it). A bar
that has no answer runs to the end of the span: waiting while the execution runs, unfinished
once it has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contracts import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

BarKind = Literal["activity", "timer", "sub_orchestration", "event_raised", "event_sent"]
Outcome = Literal["completed", "failed", "waiting", "unfinished", "fired", "received", "sent"]
"""``waiting``: no answer yet; ``unfinished``: none came before the execution ended (a timer
that a decision made moot, an activity a termination dropped)."""
MIN_WIDTH_PERCENT = 0.6
"""The narrowest bar drawn, so an instant (an event, a local activity) stays visible."""
_ENDS = ExecutionCompleted | ExecutionFailed | ExecutionTerminated | ContinueAsNew


@dataclass(frozen=True)
class Bar:
    """One row of the timeline.

    Attributes:
        kind: what the row shows; ``event_raised`` and ``event_sent`` are instants.
        label: the activity's, timer's, sub-orchestration's or event's name.
        start: when it was scheduled (or the event recorded).
        end: when its answer was recorded; None while it waits.
        outcome: how it went.
        left, width: its place in percent of the timeline's span.
        detail: a failure message, a timer's fire time, the event's target.
        instance_id: the sub-orchestration's (or the event target's) instance, to link to.
    """

    kind: BarKind
    label: str
    start: datetime
    end: datetime | None
    outcome: Outcome
    left: float
    width: float
    detail: str = ""
    instance_id: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    bars: list[Bar]
    ended: bool
    """Whether the execution has ended (else ``end`` is "now")."""

    @property
    def duration_seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def ticks(self, count: int = 4) -> list[tuple[float, str]]:
        """``count + 1`` evenly spaced marks: (percent, offset from the start)."""
        return [
            (100 * step / count, "+" + format_duration(self.duration_seconds * step / count))
            for step in range(count + 1)
        ]


@dataclass(frozen=True)
class _Open:
    kind: BarKind
    label: str
    start: datetime
    detail: str = ""
    instance_id: str | None = None


def layout(events: Sequence[HistoryEvent], now: datetime) -> Timeline | None:
    """The timeline of the latest execution in ``events``; None before it has started."""
    starts = [i for i, event in enumerate(events) if isinstance(event, ExecutionStarted)]
    if not starts:
        return None
    current = events[starts[-1] :]
    begin = current[0].timestamp
    closing = next((event for event in current if isinstance(event, _ENDS)), None)
    finish = closing.timestamp if closing is not None else max(now, current[-1].timestamp)
    spans = _spans(current)
    span_seconds = max((finish - begin).total_seconds(), 1e-3)

    def place(moment: datetime) -> float:
        offset = (moment - begin).total_seconds() / span_seconds * 100
        return min(max(offset, 0.0), 100.0)

    bars = []
    for opened, end, outcome in spans:
        if outcome == "waiting" and closing is not None:
            outcome = "unfinished"
        left = place(opened.start)
        right = place(end if end is not None else finish)
        width = max(right - left, MIN_WIDTH_PERCENT)
        bars.append(
            Bar(
                kind=opened.kind,
                label=opened.label,
                start=opened.start,
                end=end,
                outcome=outcome,
                left=round(min(left, 100 - width), 3),
                width=round(width, 3),
                detail=opened.detail,
                instance_id=opened.instance_id,
            )
        )
    return Timeline(begin, finish, bars, ended=closing is not None)


def _spans(events: Sequence[HistoryEvent]) -> list[tuple[_Open, datetime | None, Outcome]]:
    """Each scheduled thing with its answer (or none yet), in the order they were scheduled."""
    opened: dict[tuple[str, int], int] = {}
    spans: list[tuple[_Open, datetime | None, Outcome]] = []

    def close(key: tuple[str, int], end: datetime, outcome: Outcome, detail: str = "") -> None:
        index = opened.pop(key, None)
        if index is not None:
            bar, _, _ = spans[index]
            if detail:
                bar = _Open(bar.kind, bar.label, bar.start, detail, bar.instance_id)
            spans[index] = (bar, end, outcome)

    for event in events:
        match event:
            case TaskScheduled():
                label = event.name if event.attempt == 1 else f"{event.name} (#{event.attempt})"
                opened[("task", event.event_id)] = len(spans)
                spans.append((_Open("activity", label, event.timestamp), None, "waiting"))
            case TaskCompleted():
                close(("task", event.task_scheduled_id), event.timestamp, "completed")
            case TaskFailed():
                key = ("task", event.task_scheduled_id)
                close(key, event.timestamp, "failed", event.failure.message)
            case TimerCreated():
                opened[("timer", event.event_id)] = len(spans)
                detail = f"fires at {event.fire_at.isoformat(timespec='seconds')}"
                spans.append((_Open("timer", "timer", event.timestamp, detail), None, "waiting"))
            case TimerFired():
                close(("timer", event.timer_id), event.timestamp, "fired")
            case SubOrchestrationInstanceCreated():
                opened[("sub", event.event_id)] = len(spans)
                bar = _Open("sub_orchestration", event.name, event.timestamp, "", event.instance_id)
                spans.append((bar, None, "waiting"))
            case SubOrchestrationInstanceCompleted():
                close(("sub", event.task_scheduled_id), event.timestamp, "completed")
            case SubOrchestrationInstanceFailed():
                key = ("sub", event.task_scheduled_id)
                close(key, event.timestamp, "failed", event.failure.message)
            case EventRaised():
                bar = _Open("event_raised", event.name, event.timestamp)
                spans.append((bar, event.timestamp, "received"))
            case EventSent():
                detail = f"to {event.instance_id}"
                bar = _Open("event_sent", event.name, event.timestamp, detail, event.instance_id)
                spans.append((bar, event.timestamp, "sent"))
            case _:
                pass
    return spans


def format_duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 12 s``, ``2 h 5 min``; an empty string for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
