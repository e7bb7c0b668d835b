"""Why an execution does not take an inbound event, as the handler reads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """An inbound event the execution does not record, and why.

    Attributes:
        reason: in words, for logs and dead letters.
        never_scheduled: the event answers a call this execution never made: no
            ``TaskScheduled``, ``TimerCreated`` or ``SubOrchestrationInstanceCreated`` with its
            id (or one of another kind). Not a repeated or late answer, which at-least-once
            delivery makes normal, but a message that does not belong to this execution.
    """

    reason: str
    never_scheduled: bool = False
