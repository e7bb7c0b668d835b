"""Reading a carrier: a delivery whose body is a JSON array of messages (ADR 17).

A carrier is only a way of carrying its messages, so one invalid message must not take the
valid ones down with it (ADR 21). ``unpack`` validates the whole array at once, which is all
a valid carrier costs; only when that fails does it find the array's elements in the body and
validate each on its own, so the caller can dead-letter the invalid ones alone and handle the
rest. A body that is not a JSON array at all (bad bytes, unbalanced brackets, an object) has
no elements to tell apart: ``CarrierError``, and the whole carrier goes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from durable.dead_lettering import DeadLetter

M = TypeVar("M", bound=BaseModel)

# What matters for telling the elements apart: strings (whose brackets and commas are text)
# and the structural characters outside them. An unterminated string matches nothing, so
# the brackets after it are counted and the carrier turns out unbalanced.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class CarrierError(Exception):
    """A carrier's body is not a JSON array, so none of its messages can be read.

    Attributes:
        error: the validation error of the whole body.
    """

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class InvalidElement:
    """An element of a carrier that is not a valid message, to dead-letter alone.

    Attributes:
        index: its position in the carrier's array, from 0.
        body: its own JSON text, as the carrier held it.
        problem: why it cannot be processed (the validation error).
        message_id: its envelope's ``message_id``, when that much can be read ("" if not).
        message_type: its envelope's ``type``, likewise.
        correlation_id: its envelope's ``correlation_id``, likewise.
    """

    index: int
    body: bytes
    problem: str
    message_id: str = ""
    message_type: str = ""
    correlation_id: str = ""

    @property
    def reason(self) -> str:
        """The dead letter's reason: which element, and what is wrong with it."""
        return f"element {self.index} of the carrier: {self.problem}"

    @classmethod
    def of(cls, index: int, message: BaseModel, problem: str) -> InvalidElement:
        """A valid message that still cannot be processed where it arrived (e.g. a task for
        another activity)."""
        return cls(index, message.model_dump_json().encode(), problem, *_envelope(message))

    def dead_letter(self, carrier_id: str | None) -> DeadLetter:
        """The element on its way to the dead-letter queue, alone; a re-drive delivers it as
        a message of its own (its own type, never the carrier's)."""
        return DeadLetter(
            self.body,
            self.reason,
            self.message_id,
            self.message_type,
            self.correlation_id,
            carrier_id,
        )


@dataclass(frozen=True)
class Unpacked(Generic[M]):
    """A carrier's messages, split into the valid ones and the invalid elements.

    Attributes:
        messages: the valid messages, in the carrier's order.
        indices: the position of each of ``messages`` in the carrier.
        invalid: the elements that are not valid messages, in the carrier's order.
    """

    messages: list[M]
    indices: Sequence[int]
    invalid: list[InvalidElement]


def unpack(body: bytes, adapter: TypeAdapter[list[M]], model: type[M]) -> Unpacked[M]:
    """The messages a carrier's ``body`` holds (``adapter`` validates the whole array,
    ``model`` one element).

    Raises:
        CarrierError: the body is not a JSON array whose elements can be told apart.
    """
    try:
        messages = adapter.validate_json(body)
    except ValidationError as whole:
        elements = _elements(body)
        if elements is None:
            raise CarrierError(whole) from None
        return _validate_each(elements, model)
    return Unpacked(messages, range(len(messages)), [])


def _validate_each(elements: list[bytes], model: type[M]) -> Unpacked[M]:
    messages: list[M] = []
    indices: list[int] = []
    invalid: list[InvalidElement] = []
    for index, element in enumerate(elements):
        try:
            messages.append(model.model_validate_json(element))
        except ValidationError as error:
            invalid.append(
                InvalidElement(
                    index, element, f"invalid message: {error}", *_readable_envelope(element)
                )
            )
        else:
            indices.append(index)
    return Unpacked(messages, indices, invalid)


def _elements(body: bytes) -> list[bytes] | None:
    """The JSON text of each element of the array ``body``; None when ``body`` is not an
    array whose top-level commas and brackets can be found (the elements themselves need
    not be valid JSON)."""
    text = body.strip()
    if not (text.startswith(b"[") and text.endswith(b"]")):
        return None
    elements: list[bytes] = []
    depth = 0
    start = 1
    for token in _STRUCTURE.finditer(text):
        symbol = token.group()
        if symbol in (b"[", b"{"):
            depth += 1
        elif symbol in (b"]", b"}"):
            depth -= 1
            if depth == 0:  # the carrier's own closing bracket
                if token.end() != len(text):
                    return None
                elements.append(text[start : token.start()].strip())
                break
        elif symbol == b"," and depth == 1:
            elements.append(text[start : token.start()].strip())
            start = token.end()
    if depth != 0:
        return None
    return [] if elements == [b""] else elements


def _readable_envelope(element: bytes) -> tuple[str, str, str]:
    """The element's message id, type and correlation id, as far as they can be read."""
    try:
        document: Any = json.loads(element)
    except (ValueError, RecursionError):
        return "", "", ""
    envelope = document.get("envelope") if isinstance(document, dict) else None
    if not isinstance(envelope, dict):
        return "", "", ""
    fields = (envelope.get(name) for name in ("message_id", "type", "correlation_id"))
    id_, type_, correlation_id = (f if isinstance(f, str) else "" for f in fields)
    return id_, type_, correlation_id


def _envelope(message: BaseModel) -> tuple[str, str, str]:
    envelope = message.envelope  # type: ignore[attr-defined]
    return str(envelope.message_id), envelope.type, envelope.correlation_id
