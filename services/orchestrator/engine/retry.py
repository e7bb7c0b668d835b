"""Retry policies: ``call_activity_with_retry`` and ``call_sub_orchestrator_with_retry``.

Names follow azure-functions-durable's ``RetryOptions``. The waits between attempts are
durable timers, so they are in the history and survive restarts like any other timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contracts import FailureDetails
from services.orchestrator.engine.errors import TaskFailedError
from services.orchestrator.engine.tasks import CompletableTask, Task, TimerTask


@dataclass(frozen=True)
class RetryOptions:
    """When and how often to try a failed call again.

    Attributes:
        first_retry_interval_in_milliseconds: the wait before the second attempt.
        max_number_of_attempts: attempts in all, the first included.
        backoff_coefficient: each wait is the previous one times this (1 = constant).
        max_retry_interval_in_milliseconds: the longest single wait.
        retry_timeout_in_milliseconds: no attempt starts later than this after the first.
        non_retryable_error_types: error type names (``FailureDetails.error_type``) that fail
            at once; a failure marked ``is_non_retriable`` does too.
    """

    first_retry_interval_in_milliseconds: int
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval_in_milliseconds: int | None = None
    retry_timeout_in_milliseconds: int | None = None
    non_retryable_error_types: Iterable[str] = field(default=())

    def __post_init__(self) -> None:
        if self.first_retry_interval_in_milliseconds <= 0:
            raise ValueError("first_retry_interval_in_milliseconds must be positive")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1:
            raise ValueError("backoff_coefficient must be at least 1")
        object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after attempt number ``attempt`` (1-based) failed."""
        milliseconds = self.first_retry_interval_in_milliseconds * (
            self.backoff_coefficient ** (attempt - 1)
        )
        if self.max_retry_interval_in_milliseconds is not None:
            milliseconds = min(milliseconds, self.max_retry_interval_in_milliseconds)
        return timedelta(milliseconds=milliseconds)

    def next_attempt_at(
        self,
        attempt: int,
        failure: FailureDetails | None,
        first_attempt_at: datetime,
        now: datetime,
    ) -> datetime | None:
        """When to start attempt ``attempt + 1`` after ``failure``, or None to give up."""
        if attempt >= self.max_number_of_attempts:
            return None
        if failure is not None and (
            failure.is_non_retriable or failure.error_type in self.non_retryable_error_types
        ):
            return None
        retry_at = now + self.delay_after(attempt)
        if self.retry_timeout_in_milliseconds is not None:
            deadline = first_attempt_at + timedelta(milliseconds=self.retry_timeout_in_milliseconds)
            if retry_at > deadline:
                return None
        return retry_at


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
