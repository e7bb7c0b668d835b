"""How a failure travels: from an activity to its orchestrator, and from an orchestrator out."""

from __future__ import annotations

import traceback
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_MESSAGE_CHARACTERS = 16_384
MAX_STACK_TRACE_CHARACTERS = 65_536


def storable_text(text: str, most: int) -> str:
    """``text`` as something Postgres can store and a person can read: U+0000 written as
    ``\\u0000`` and lone surrogates as ``\\udXXX`` (what the text held, not a refusal: a
    failure is reported whatever its message holds), at most ``most`` characters, keeping
    the beginning and the end (where a stack's innermost frames are)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > most:
        cut = len(text) - most
        half = most // 2
        text = f"{text[:half]}\n… ({cut} characters left out) …\n{text[-half:]}"
    return text


def _message(text: str) -> str:
    return storable_text(text, MAX_MESSAGE_CHARACTERS)


def _stack_trace(text: str) -> str:
    return storable_text(text, MAX_STACK_TRACE_CHARACTERS)


class FailureDetails(BaseModel):
    """A failure, described in terms any language can read.

    Its texts are made storable rather than refused (a failure must be recorded whatever it
    says): U+0000 and lone surrogates are written as escapes, and a message or stack longer
    than ``MAX_MESSAGE_CHARACTERS`` or ``MAX_STACK_TRACE_CHARACTERS`` is shortened.

    Attributes:
        error_type: the exception's type name, e.g. ``ValueError``.
        message: the exception's message.
        stack_trace: the formatted traceback, when there is one.
        inner_failure: the failure that caused this one (an activity failing a sub-orchestration).
        is_non_retriable: set by the sender when retrying cannot help.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_type: Annotated[str, AfterValidator(_message)]
    message: Annotated[str, AfterValidator(_message)]
    stack_trace: Annotated[str, AfterValidator(_stack_trace)] | None = None
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
