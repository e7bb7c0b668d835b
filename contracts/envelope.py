"""The envelope every message carries, and deterministic message ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.limits import MAX_SHORT_STRING_BYTES, check_short_string

SCHEMA_VERSION = 1
"""Bumped when a message body changes incompatibly; consumers reject versions they don't know."""

_SHORT_FIELDS = ("instance_id", "execution_id", "correlation_id", "type")

TraceParent = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
]
"""A W3C ``traceparent`` (version, trace id, parent span id, flags), as OpenTelemetry writes
it: where a message's work belongs in a trace (ADR 32)."""


def _absent(value: object) -> bool:
    return value is None


def trace_field() -> Any:
    """An optional ``TraceParent`` field left out of the JSON when it is not set, so that a
    deployment without tracing sends and stores exactly what it did before (ADR 32)."""
    return Field(default=None, exclude_if=_absent)


_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c1f0e-2a43-4b4e-9d83-7d3c5bb0c2a1")


class Envelope(BaseModel):
    """Addressing and tracing for one message.

    Its texts become AMQP short strings (``correlation_id``, ``type``) or text columns, so
    each is at most 255 bytes in UTF-8 and holds no U+0000 (``contracts.limits``).

    Attributes:
        message_id: unique per logical message; a redelivery or a re-send of the same logical
            message has the same id, so consumers can drop duplicates.
        instance_id: the orchestration instance the message concerns.
        execution_id: the execution it belongs to, when it belongs to one; a message for an
            execution that has since ended or continued as new is dropped.
        correlation_id: carried unchanged through every message caused by the same start.
        type: the body's type name, so a reader can route without parsing the body.
        schema_version: the body's schema version.
        sent_at: when the sender created the message (UTC).
        traceparent: the trace context of the work that sent it (the HTTP start, the
            orchestration episode that scheduled a task), when tracing is on; it travels in
            the body so that it survives carriers and the outbox (ADR 32).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: uuid.UUID
    instance_id: str
    execution_id: str | None = None
    correlation_id: str
    type: str
    schema_version: int = SCHEMA_VERSION
    sent_at: datetime
    traceparent: TraceParent | None = trace_field()

    @model_validator(mode="after")
    def _short_strings(self) -> Self:
        # One check for the four (every message has an envelope): the common case, short
        # ASCII without U+0000, is decided by a single look at their concatenation.
        texts = (self.instance_id, self.execution_id or "", self.correlation_id, self.type)
        joined = "".join(texts)
        if (
            joined.isascii()
            and "\x00" not in joined
            and max(map(len, texts)) <= MAX_SHORT_STRING_BYTES
        ):
            return self
        for name, text in zip(_SHORT_FIELDS, texts, strict=True):
            check_short_string(text, name)
        return self


def deterministic_message_id(*parts: object) -> uuid.UUID:
    """A message id derived from what the message means, e.g. (instance, execution, task, kind).

    Re-sending the same logical message (after a crash, from a replayed decision) yields the
    same id, which is what makes duplicate detection possible.
    """
    # Length-prefixed, so ("a|b", "c") and ("a", "b|c") cannot collide.
    name = "".join(f"{len(text)}:{text}" for text in map(str, parts))
    return uuid.uuid5(_MESSAGE_ID_NAMESPACE, name)
