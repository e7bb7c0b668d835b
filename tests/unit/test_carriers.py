"""Reading carriers (ADR 17, 21): a valid carrier is read whole; an invalid element is set
aside alone, with its own JSON and what can be read of its envelope; a body that is not an
array has no elements to tell apart."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from contracts import (
    ActivityTask,
    ActivityTaskBatch,
    ActivityTaskMessage,
    Envelope,
    OrchestratorMessage,
    OrchestratorMessageBatch,
    TaskCompleted,
    batch_body,
)
from services.common.carriers import CarrierError, InvalidElement, unpack

AT = datetime(2026, 1, 1, tzinfo=UTC)


def result(task_id: int, value: object = "ok") -> OrchestratorMessage:
    return OrchestratorMessage(
        envelope=Envelope(
            message_id=uuid.UUID(int=task_id + 1),
            instance_id="i1",
            execution_id="e1",
            correlation_id="c1",
            type="TaskCompleted",
            sent_at=AT,
        ),
        body=TaskCompleted(timestamp=AT, task_scheduled_id=task_id, result=value),
    )


def encoded(*messages: OrchestratorMessage) -> list[bytes]:
    return [message.model_dump_json().encode() for message in messages]


def with_task_id(body: bytes, task_id: object) -> bytes:
    document = json.loads(body)
    document["body"]["task_scheduled_id"] = task_id
    return json.dumps(document).encode()


def unpack_results(body: bytes):
    return unpack(body, OrchestratorMessageBatch, OrchestratorMessage)


def test_a_valid_carrier_yields_every_message_in_order():
    messages = [result(0), result(1, {"nested": ["x", "]", ","]}), result(2)]

    unpacked = unpack_results(batch_body(encoded(*messages)))

    assert unpacked.messages == messages
    assert list(unpacked.indices) == [0, 1, 2]
    assert unpacked.invalid == []


def test_an_invalid_element_is_set_aside_alone_with_its_own_json_and_envelope():
    first, second, third = encoded(result(0), result(1), result(2))
    broken = with_task_id(second, "seven")

    unpacked = unpack_results(batch_body([first, broken, third]))

    assert unpacked.messages == [result(0), result(2)]
    assert list(unpacked.indices) == [0, 2]
    [invalid] = unpacked.invalid
    assert invalid.index == 1
    assert invalid.body == broken
    assert "task_scheduled_id" in invalid.problem
    assert invalid.reason.startswith("element 1 of the carrier: invalid message:")
    assert invalid.message_id == str(uuid.UUID(int=2))
    assert invalid.message_type == "TaskCompleted"
    assert invalid.correlation_id == "c1"


def test_elements_that_are_not_json_are_set_aside_and_the_others_read():
    first, second = encoded(result(0), result(1))
    body = b"[" + first + b", {not json at all}, 42 ,\n" + second + b"]"

    unpacked = unpack_results(body)

    assert unpacked.messages == [result(0), result(1)]
    assert [(e.index, e.body, e.message_id) for e in unpacked.invalid] == [
        (1, b"{not json at all}", ""),
        (2, b"42", ""),
    ]


def test_brackets_and_commas_inside_strings_do_not_split_elements():
    tricky = result(0, 'a "quoted" ], [ value, with \\ escapes {')
    broken = with_task_id(encoded(result(1, "}]{[,"))[0], None)

    unpacked = unpack_results(batch_body([*encoded(tricky), broken]))

    assert unpacked.messages == [tricky]
    assert [(e.index, e.body) for e in unpacked.invalid] == [(1, broken)]


@pytest.mark.parametrize(
    "body",
    [b"\x00\xff not JSON", b'{"envelope": {}}', b"[" + encoded(result(0))[0], b"[1]]", b""],
    ids=["bytes", "an object", "unterminated", "closed twice", "empty"],
)
def test_a_body_that_is_not_an_array_cannot_be_unpacked(body: bytes):
    with pytest.raises(CarrierError):
        unpack_results(body)


def test_an_empty_carrier_holds_nothing():
    unpacked = unpack_results(b" [ ] ")

    assert unpacked.messages == []
    assert unpacked.invalid == []


def test_a_valid_message_that_does_not_belong_becomes_an_element_to_set_aside():
    task = ActivityTaskMessage(
        envelope=Envelope(
            message_id=uuid.UUID(int=7),
            instance_id="i1",
            correlation_id="c1",
            type="ActivityTask",
            sent_at=AT,
        ),
        body=ActivityTask(name="square", input=3, task_scheduled_id=0),
    )
    [again] = unpack(batch_body(encoded(task)), ActivityTaskBatch, ActivityTaskMessage).messages

    element = InvalidElement.of(4, again, "activity 'square' does not belong here")
    letter = element.dead_letter("carrier-1")

    assert ActivityTaskMessage.model_validate_json(letter.body) == task
    assert letter.reason == "element 4 of the carrier: activity 'square' does not belong here"
    assert (letter.message_id, letter.message_type) == (str(uuid.UUID(int=7)), "ActivityTask")
    assert letter.carrier_id == "carrier-1"
