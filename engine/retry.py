"""Retried calls: the task behind ``call_activity_with_retry`` and
``call_sub_orchestrator_with_retry``.

Each attempt is a new task; the waits between attempts are durable timers
(``durable.retry.RetryOptions`` says how long), so they are in the history and survive
restarts like any other timer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from durable.errors import TaskFailedError
from durable.retry import RetryOptions
from durable.tasks import CompletableTask, Task, TimerTask


class RetryTask(Task[Any]):
    """Runs attempts until one succeeds or the policy gives up; fails with the last failure."""

    def __init__(
        self,
        options: RetryOptions,
        start_attempt: Callable[[int], Task[Any]],
        create_timer: Callable[[datetime], TimerTask],
        current_time: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self._options = options
        self._start_attempt = start_attempt
        self._create_timer = create_timer
        self._current_time = current_time  # the orchestration's replay-safe clock
        self._first_attempt_at = current_time()
        self.attempt = 0
        self._next()

    def _next(self) -> None:
        self.attempt += 1
        task = self._start_attempt(self.attempt)
        task._parents.append(self)
        if task.is_completed:
            self._on_child_completed(task)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self._completed:
            return
        if isinstance(child, TimerTask):
            self._next()
            return
        if not child.is_faulted:
            self._complete(child.result)
            return
        error = child.exception
        assert error is not None
        failure = error.details if isinstance(error, TaskFailedError) else None
        retry_at = self._options.next_attempt_at(
            self.attempt, failure, self._first_attempt_at, self._current_time()
        )
        if retry_at is None:
            self._fail(error)
            return
        if isinstance(child, CompletableTask):
            child.retried = True
        timer = self._create_timer(retry_at)
        timer._parents.append(self)
