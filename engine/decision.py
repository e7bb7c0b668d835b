"""What an episode decided, as the handler reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

from contracts import FailureDetails, HistoryEvent, OrchestrationStatus
from durable.errors import NonDeterminismError


@dataclass(frozen=True)
class ContinueAsNewAsked:
    """The code called ``continue_as_new``: it takes effect when the code returns."""

    input: JsonValue
    preserve_unprocessed_events: bool


@dataclass(frozen=True)
class ContinueAsNewRequest:
    """The execution ended with ``continue_as_new``: start ``new_execution_id`` with ``input``.

    Attributes:
        carried_events: ``(name, data)`` of events raised to the old execution that it never
            consumed, oldest first, when ``preserve_unprocessed_events`` was asked for; the new
            execution receives them as if raised to it.
    """

    input: JsonValue
    new_execution_id: str
    carried_events: tuple[tuple[str, JsonValue], ...] = ()


@dataclass
class Decision:
    """What one episode decided.

    Attributes:
        new_events: events to append after the episode's inbound events: one per new action,
            then the completion event if the execution ended.
        status: ``Running``, or the status the execution reached.
        custom_status: the value last passed to ``set_custom_status``.
        output: the orchestrator's return value, when it completed.
        failure: why it failed, when it failed.
        non_determinism: set when the failure is a history mismatch.
        cancelled_timers: ids of timers cancelled in this episode.
        continue_as_new: set when the execution continued as new.
    """

    new_events: list[HistoryEvent] = field(default_factory=list)
    status: OrchestrationStatus = OrchestrationStatus.RUNNING
    custom_status: JsonValue = None
    output: JsonValue = None
    failure: FailureDetails | None = None
    non_determinism: NonDeterminismError | None = None
    cancelled_timers: list[int] = field(default_factory=list)
    continue_as_new: ContinueAsNewRequest | None = None
