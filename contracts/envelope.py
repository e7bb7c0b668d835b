"""The envelope every message carries, and deterministic message ids."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1
"""Bumped when a message body changes incompatibly; consumers reject versions they don't know."""

_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c1f0e-2a43-4b4e-9d83-7d3c5bb0c2a1")


class Envelope(BaseModel):
    """Addressing and tracing for one message.

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
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: uuid.UUID
    instance_id: str
    execution_id: str | None = None
    correlation_id: str
    type: str
    schema_version: int = SCHEMA_VERSION
    sent_at: datetime


def deterministic_message_id(*parts: object) -> uuid.UUID:
    """A message id derived from what the message means, e.g. (instance, execution, task, kind).

    Re-sending the same logical message (after a crash, from a replayed decision) yields the
    same id, which is what makes duplicate detection possible.
    """
    # Length-prefixed, so ("a|b", "c") and ("a", "b|c") cannot collide.
    name = "".join(f"{len(text)}:{text}" for text in map(str, parts))
    return uuid.uuid5(_MESSAGE_ID_NAMESPACE, name)
