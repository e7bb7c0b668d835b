"""Envelopes and messages: strict validation and deterministic ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts import (
    SCHEMA_VERSION,
    ActivityTask,
    ActivityTaskMessage,
    Envelope,
    OrchestratorMessage,
    TaskCompleted,
    deterministic_message_id,
)

SENT_AT = datetime(2026, 1, 1, tzinfo=UTC)


def envelope_fields(**overrides):
    fields = {
        "message_id": str(uuid.UUID(int=1)),
        "instance_id": "i1",
        "correlation_id": "c1",
        "type": "TaskCompleted",
        "sent_at": SENT_AT.isoformat(),
    }
    return fields | overrides


def task_completed_message(**envelope_overrides):
    return {
        "envelope": envelope_fields(**envelope_overrides),
        "body": {
            "event_type": "TaskCompleted",
            "timestamp": SENT_AT.isoformat(),
            "task_scheduled_id": 0,
            "result": "ok",
        },
    }


def test_valid_orchestrator_message_round_trips_through_json():
    message = OrchestratorMessage.model_validate(task_completed_message())

    again = OrchestratorMessage.model_validate_json(message.model_dump_json())

    assert again == message
    assert isinstance(again.body, TaskCompleted)
    assert again.envelope.schema_version == SCHEMA_VERSION


def test_envelope_rejects_unknown_fields():
    with pytest.raises(ValidationError, match="priority"):
        Envelope.model_validate(envelope_fields(priority=5))


def test_message_rejects_unknown_fields_at_top_level_and_in_the_body():
    extra_top = task_completed_message() | {"headers": {}}
    extra_body = task_completed_message()
    extra_body["body"]["retries"] = 3

    with pytest.raises(ValidationError, match="headers"):
        OrchestratorMessage.model_validate(extra_top)
    with pytest.raises(ValidationError, match="retries"):
        OrchestratorMessage.model_validate(extra_body)


def test_message_rejects_an_envelope_type_that_does_not_match_the_body():
    with pytest.raises(ValidationError, match="does not match body 'TaskCompleted'"):
        OrchestratorMessage.model_validate(task_completed_message(type="TaskFailed"))


def test_message_rejects_a_schema_version_newer_than_this_service_knows():
    newer = task_completed_message(schema_version=SCHEMA_VERSION + 1)

    with pytest.raises(ValidationError, match="newer than this service understands"):
        OrchestratorMessage.model_validate(newer)


def test_message_of_the_current_or_an_older_schema_version_is_accepted():
    for version in range(1, SCHEMA_VERSION + 1):
        message = OrchestratorMessage.model_validate(task_completed_message(schema_version=version))
        assert message.envelope.schema_version == version


def test_orchestrator_message_rejects_an_event_that_is_not_inbound():
    message = task_completed_message(type="TaskScheduled")
    message["body"] = {"event_type": "TaskScheduled", "timestamp": SENT_AT.isoformat(), "name": "x"}

    with pytest.raises(ValidationError):
        OrchestratorMessage.model_validate(message)


def test_activity_task_message_requires_the_activity_task_type():
    body = ActivityTask(name="say_hello", input="Tokyo", task_scheduled_id=0)
    envelope = Envelope.model_validate(envelope_fields(type="TaskCompleted"))

    with pytest.raises(ValidationError, match="is not 'ActivityTask'"):
        ActivityTaskMessage(envelope=envelope, body=body)


def test_deterministic_message_id_is_the_same_for_the_same_parts():
    assert deterministic_message_id("i1", "e1", "task", 3) == deterministic_message_id(
        "i1", "e1", "task", 3
    )
    assert deterministic_message_id("i1", "e1", "task", 3).version == 5


def test_deterministic_message_id_differs_when_any_part_differs():
    ids = {
        deterministic_message_id("i1", "e1", "task", 3),
        deterministic_message_id("i2", "e1", "task", 3),
        deterministic_message_id("i1", "e2", "task", 3),
        deterministic_message_id("i1", "e1", "timer", 3),
        deterministic_message_id("i1", "e1", "task", 4),
        deterministic_message_id("i1", "e1", "task"),
    }

    assert len(ids) == 6
