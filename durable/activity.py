"""What an activity function can learn about the task it is running."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivityContext:
    """The task an activity is running.

    Activities run at least once: a worker that crashes after the side effect and before the
    acknowledgement runs the task again. Use ``idempotency_key`` to make side effects safe to
    repeat (e.g. as a unique key on the row you insert, or an idempotency header on a payment).

    Attributes:
        instance_id: the orchestration instance that scheduled the task.
        execution_id: the execution of that instance (a new one after continue-as-new).
        task_id: the task's id in that execution (its ``TaskScheduled`` event id).
        name: the activity's registered name.
        attempt: 1 for the first attempt; higher for retries scheduled by a retry policy.
    """

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        """Identical for every delivery of this task, different for every other task."""
        return f"{self.instance_id}:{self.execution_id}:{self.task_id}"
