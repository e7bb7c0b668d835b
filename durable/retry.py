"""Retry policies for ``call_activity_with_retry`` and ``call_sub_orchestrator_with_retry``.

Names follow azure-functions-durable's ``RetryOptions``. The waits between attempts are
durable timers, so they are in the history and survive restarts like any other timer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts import FailureDetails


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
