"""How a failure travels: from an activity to its orchestrator, and from an orchestrator out."""

from __future__ import annotations

import traceback

from pydantic import BaseModel, ConfigDict


class FailureDetails(BaseModel):
    """A failure, described in terms any language can read.

    Attributes:
        error_type: the exception's type name, e.g. ``ValueError``.
        message: the exception's message.
        stack_trace: the formatted traceback, when there is one.
        inner_failure: the failure that caused this one (an activity failing a sub-orchestration).
        is_non_retriable: set by the sender when retrying cannot help.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_type: str
    message: str
    stack_trace: str | None = None
    inner_failure: FailureDetails | None = None
    is_non_retriable: bool = False

    @classmethod
    def from_exception(cls, error: BaseException) -> FailureDetails:
        """Describe an exception: type name, message, formatted stack, and the failure it
        wraps when it carries one (a ``details`` attribute, as ``TaskFailedError`` does)."""
        inner = getattr(error, "details", None)
        return cls(
            error_type=type(error).__name__,
            message=str(error),
            stack_trace="".join(traceback.format_exception(error)),
            inner_failure=inner if isinstance(inner, FailureDetails) else None,
        )
