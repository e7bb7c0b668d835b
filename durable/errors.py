"""Errors the engine raises into orchestrator code, or reports about it."""

from __future__ import annotations

from contracts import FailureDetails


class TaskFailedError(Exception):
    """An activity (or sub-orchestration) failed; raised where the orchestrator awaits it.

    Attributes:
        details: what failed and why, as the worker reported it.
    """

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self.details = details


class NonDeterminismError(Exception):
    """The orchestrator code no longer matches the history it is replaying.

    Attributes:
        instance_id: the instance being replayed.
        event_id: the history event where code and history part ways.
        expected: what the history holds at that point.
        actual: what the code asked for instead.
    """

    def __init__(self, instance_id: str, event_id: int, expected: str, actual: str) -> None:
        super().__init__(
            f"Non-deterministic orchestrator in instance {instance_id!r} at event #{event_id}: "
            f"history holds {expected}, but the code now asks for {actual}. The orchestrator "
            "code changed while this instance was running, or it depends on something that is "
            "not replay-safe (the clock, random numbers, I/O, environment variables)."
        )
        self.instance_id = instance_id
        self.event_id = event_id
        self.expected = expected
        self.actual = actual


class OrchestratorYieldError(TypeError):
    """The orchestrator yielded or awaited something that is not a durable task."""


class EventTimeoutError(TimeoutError):
    """``wait_for_external_event(name, timeout)`` ran out of time before the event arrived.

    Attributes:
        name: the event waited for.
        timeout_seconds: how long the orchestrator waited.
    """

    def __init__(self, name: str, timeout_seconds: float) -> None:
        super().__init__(f"no {name!r} event arrived within {timeout_seconds:g} s")
        self.name = name
        self.timeout_seconds = timeout_seconds


class ActivityTimeoutError(TaskFailedError):
    """An activity with a time-out did not finish within it after a worker started it.

    A retry policy retries it like any other failure (unless its type,
    ``ActivityTimeoutError``, is listed as not retryable); a late result is ignored.
    """

    def __init__(self, description: str, timeout_seconds: float) -> None:
        message = f"{description} timed out: not finished {timeout_seconds:g} s after it started"
        super().__init__(
            message, FailureDetails(error_type="ActivityTimeoutError", message=message)
        )
        self.timeout_seconds: float | None = timeout_seconds

    @classmethod
    def reported(cls, message: str, details: FailureDetails) -> ActivityTimeoutError:
        """The time-out as the worker reported it (it gave up on the activity itself)."""
        error = cls.__new__(cls)
        TaskFailedError.__init__(error, message, details)
        error.timeout_seconds = None
        return error


class EntityOperationFailedError(TaskFailedError):
    """An entity operation that ``call_entity`` asked for raised; the entity kept the state it
    had before it. ``details`` describe the entity function's error."""


class LockingRulesViolationError(Exception):
    """An orchestration broke the rules of critical sections: it asked for a lock while it
    holds one (as Durable Functions' ``LockAsync`` refuses), or for a lock on no entity."""
