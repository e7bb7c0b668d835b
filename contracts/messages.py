"""Messages between services: an envelope and a typed body, encoded as JSON.

- ``OrchestratorMessage`` goes to an orchestrator partition queue. Its body is the history
  event the orchestrator will record (``ExecutionStarted`` from a client, ``TaskCompleted`` from
  an activity worker, ``EventRaised`` from a client, ...), as in the Durable Task Framework.
- ``ActivityTaskMessage`` goes to an activity's queue and asks a worker to run it.

Either may travel in a batch: one AMQP message whose type is ``ActivityTaskBatch`` (tasks of
one activity, from one orchestrator batch) or ``OrchestratorMessageBatch`` (messages for one
partition, such as results finished together) and whose body is a JSON array of the messages,
each with its own envelope (ADR 17). A batch is only a way of carrying them: every message in
it is handled as if it had come alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

from contracts.envelope import SCHEMA_VERSION, Envelope
from contracts.history import InboundEvent
from contracts.limits import ShortString, StorableJson


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    envelope: Envelope

    @model_validator(mode="after")
    def _known_schema_version(self) -> Self:
        if self.envelope.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.envelope.schema_version} is newer than this service "
                f"understands ({SCHEMA_VERSION})"
            )
        return self


EnvelopedMessage = _Message
"""The base of a message with an envelope, for the messages workflows exchange with other
systems over the broker (their bodies are their own): strict, frozen, and refused when their
``schema_version`` is newer than this code knows."""


class OrchestratorMessage(_Message):
    body: InboundEvent

    @model_validator(mode="after")
    def _type_matches_body(self) -> Self:
        if self.envelope.type != self.body.event_type:
            raise ValueError(
                f"envelope type {self.envelope.type!r} does not match body {self.body.event_type!r}"
            )
        return self


class ActivityTask(BaseModel):
    """One activity invocation.

    ``(envelope.instance_id, task_scheduled_id)`` is the task's idempotency key: a worker may
    receive the same task more than once (at-least-once delivery) and hands the key to the
    function so its side effects can be made idempotent. With ``timeout_seconds``, the worker
    reports ``TaskStarted`` before running it and gives up after that long.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ShortString
    input: StorableJson = None
    task_scheduled_id: int
    attempt: int = 1
    timeout_seconds: float | None = None


class ActivityTaskMessage(_Message):
    body: ActivityTask

    @model_validator(mode="after")
    def _type_is_activity_task(self) -> Self:
        if self.envelope.type != "ActivityTask":
            raise ValueError(f"envelope type {self.envelope.type!r} is not 'ActivityTask'")
        return self


ACTIVITY_TASK_BATCH = "ActivityTaskBatch"
ORCHESTRATOR_MESSAGE_BATCH = "OrchestratorMessageBatch"

ActivityTaskBatch = TypeAdapter(list[ActivityTaskMessage])
"""An ``ActivityTaskBatch`` body: ``ActivityTaskBatch.validate_json(body)``."""

OrchestratorMessageBatch = TypeAdapter(list[OrchestratorMessage])
"""An ``OrchestratorMessageBatch`` body: ``OrchestratorMessageBatch.validate_json(body)``."""


def batch_body(bodies: Sequence[bytes]) -> bytes:
    """The body of a batch: the messages' own JSON bodies as one JSON array."""
    return b"[" + b",".join(bodies) + b"]"
