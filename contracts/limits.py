"""What a value or an id must be for every layer after the boundary to store and send it.

Values travel as JSON through RabbitMQ, are kept as JSON text in ``events`` and as ``jsonb`` in
the ``instances`` read model. ``jsonb`` refuses what JSON text allows: a string holding
U+0000, and lone UTF-16 surrogates (``"\\ud800"``); a number that Python reads as infinity
cannot be written back at all. A value that one layer takes and the next refuses leaves an
instance half-recorded, so every value is checked once, where it enters (the HTTP API, a
broker message, an activity's result, what orchestrator code passes on), against all of
them, and refused there with a reason that names it.

Ids are checked against AMQP: ``correlation_id`` and the other message properties are short
strings of at most 255 bytes, so an id longer than that in UTF-8 can never be published.

The limits on nesting and size are one deployment-wide setting, like the partition count:
every service of a deployment must agree, so that what one accepts the others can handle.
Services set them at start (``configure``) from ``DF_MAX_JSON_DEPTH`` and
``DF_MAX_VALUE_BYTES``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, JsonValue, ValidationInfo

MAX_SHORT_STRING_BYTES = 255
"""AMQP 0-9-1 short strings (message properties, routing keys, queue names): 255 bytes."""

DEFAULT_MAX_DEPTH = 64
"""Containers nested in one value; Newtonsoft.Json's default ``MaxDepth``, which Durable
Functions' serializer uses, so a value Durable Functions takes is taken here too."""

DEFAULT_MAX_VALUE_BYTES = 2 * 1024 * 1024
"""One value's compact JSON text in UTF-8; Temporal's default limit on a payload."""

MAX_INTEGER_DIGITS = 4300
"""Python's own limit on converting integers to and from text (``sys.int_info``)."""


@dataclass(frozen=True)
class Limits:
    """How deep and how large one JSON value may be.

    Attributes:
        max_depth: objects and arrays nested inside each other (a scalar is depth 0,
            ``[]`` depth 1).
        max_value_bytes: the value's compact JSON text (no spaces, non-ASCII characters
            as themselves) in UTF-8 bytes.
    """

    max_depth: int = DEFAULT_MAX_DEPTH
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES

    def __post_init__(self) -> None:
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, not {self.max_depth}")
        if self.max_value_bytes < 64:
            raise ValueError(f"max_value_bytes must be at least 64, not {self.max_value_bytes}")


_limits = Limits()


def configure(limits: Limits) -> None:
    """Set this process's limits (a service does it once, at start, from its settings)."""
    global _limits
    _limits = limits


def current() -> Limits:
    """This process's limits."""
    return _limits


class ValueRefusedError(ValueError):
    """A value or an id that some layer after the boundary could not store or send.

    Attributes:
        what: the value's name where it was refused, e.g. "the input of activity 'Echo'".
        problem: what is wrong with it, e.g. "a string holds U+0000 at $.notes[2]".
    """

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what} cannot be stored: {problem}")
        self.what = what
        self.problem = problem


# --- values ---------------------------------------------------------------------------------

_Path = tuple["_Path", str | int] | None
"""Where a value is inside the whole: (the parent's path, key or index); None at the top.
Built as the walk goes down, and only turned into text for a refusal."""

_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_ESCAPE_LENGTH = {'"': 2, "\\": 2, "\b": 2, "\f": 2, "\n": 2, "\r": 2, "\t": 2}


def check_json_value(value: Any, what: str, limits: Limits | None = None) -> None:
    """Raise ``ValueRefusedError`` unless ``value`` (plain JSON data: dict, list, str, int,
    float, bool, None) can be stored and sent as it is.

    Refused: U+0000 or a lone surrogate in a string or a key, a number that is not finite or
    an integer of more than ``MAX_INTEGER_DIGITS`` digits, nesting deeper than
    ``limits.max_depth``, a compact JSON text longer than ``limits.max_value_bytes``, and
    anything that is not JSON data. The problem names where in the value it is
    (``$.items[3].name``).
    """
    limits = limits or _limits
    if _plainly_storable(value, limits):
        return
    # Every message and every value orchestrator code passes on is checked, so the common
    # case goes through the C encoder: a value it encodes cleanly, whose text holds no
    # escaped U+0000 and few enough brackets, is fine. Anything else is walked in Python,
    # which finds the exact problem and where it is (or that there is none).
    try:
        text = _encode(value)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        _Checker(what, limits).check(value)
        return
    if size > limits.max_value_bytes:
        raise ValueRefusedError(
            what,
            f"its JSON text is {size} bytes, more than the limit of {limits.max_value_bytes} "
            "(DF_MAX_VALUE_BYTES)",
        )
    if "\\u0000" in text or (
        text.count("[") + text.count("{") > limits.max_depth
        and _nests_deeper(value, limits.max_depth)
    ):
        _Checker(what, limits).check(value)


def _plainly_storable(value: Any, limits: Limits) -> bool:
    """The scalars most values are, decided without encoding them."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is str:
        # Short enough even if every character had to be escaped (six bytes: \u001f).
        return (
            value.isascii()
            and "\x00" not in value
            and 6 * len(value) + 2 <= (limits.max_value_bytes)
        )
    if kind is float:
        return math.isfinite(value)
    return kind is int and value.bit_length() < 64


def _refuse_to_encode(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} is not JSON data")


_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)

if _C_MAKE_ENCODER is not None:
    # The C encoder made once: ``JSONEncoder.encode`` makes a new one on every call, which
    # tripled the time a small value's check takes (measured 3.3 against 1.2 µs). No
    # markers: a cycle ends in RecursionError, which sends the value to the walk. The
    # arguments: markers, default, string encoder, indent, separators, sort_keys,
    # skipkeys, allow_nan.
    _c_encode = _C_MAKE_ENCODER(
        None, _refuse_to_encode, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def _encode(value: Any) -> str:
        return "".join(_c_encode(value, 0))

else:  # pragma: no cover - Python without the json module's C speedups
    _ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def _encode(value: Any) -> str:
        return _ENCODER.encode(value)


def _nests_deeper(value: Any, levels: int) -> bool:
    """Whether ``value`` has containers nested more than ``levels`` deep (one level at a
    time: a wide value, such as a fan-out's thousand results, costs one pass)."""
    layer = [value] if isinstance(value, dict | list) else []
    for _ in range(levels):
        children: list[Any] = []
        for container in layer:
            items = container.values() if isinstance(container, dict) else container
            children += [item for item in items if isinstance(item, dict | list)]
        if not children:
            return False
        layer = children
    return bool(layer)


class _Checker:
    """One walk over a value: every problem at once, and its exact compact JSON size."""

    def __init__(self, what: str, limits: Limits) -> None:
        self.what = what
        self.limits = limits
        self.size = 0

    def refuse(self, problem: str, path: _Path) -> ValueRefusedError:
        """``problem`` reads after the place it is about: "it" or "$.items[3]"."""
        return ValueRefusedError(self.what, f"{_where(path)} {problem}")

    def check(self, value: Any) -> None:
        self._value(value, 0, None)
        if self.size > self.limits.max_value_bytes:
            raise ValueRefusedError(
                self.what,
                f"its JSON text is {self.size} bytes, more than the limit of "
                f"{self.limits.max_value_bytes} (DF_MAX_VALUE_BYTES)",
            )

    def _value(self, value: Any, depth: int, path: _Path) -> None:
        if value is None or value is True:
            self.size += 4
        elif value is False:
            self.size += 5
        elif isinstance(value, str):
            self.size += self._string(value, path, "is a string")
        elif isinstance(value, int):
            self.size += self._integer(value, path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise self.refuse(f"is the number {value!r}, which JSON cannot hold", path)
            self.size += len(repr(value))
        elif isinstance(value, dict):
            self._container(depth, path)
            self.size += 2 * len(value) + 1 if value else 2  # braces, colons and commas
            for key, item in value.items():
                if not isinstance(key, str):
                    raise self.refuse(f"has the key {key!r}, which is not a string", path)
                self.size += self._string(key, path, "has a key")
                self._value(item, depth + 1, (path, key))
        elif isinstance(value, list):
            self._container(depth, path)
            self.size += len(value) + 1 if value else 2  # brackets and commas
            for index, item in enumerate(value):
                self._value(item, depth + 1, (path, index))
        else:
            raise self.refuse(f"is a {type(value).__name__}, which is not JSON data", path)
        if self.size > self.limits.max_value_bytes:
            # Stop walking a value already too large (its exact size no longer matters).
            raise ValueRefusedError(
                self.what,
                f"its JSON text is more than the limit of {self.limits.max_value_bytes} bytes "
                "(DF_MAX_VALUE_BYTES)",
            )

    def _container(self, depth: int, path: _Path) -> None:
        if depth >= self.limits.max_depth:
            raise self.refuse(
                f"nests deeper than {self.limits.max_depth} levels (DF_MAX_JSON_DEPTH)", path
            )

    def _string(self, text: str, path: _Path, role: str) -> int:
        """The string's size as JSON text (quotes and escapes included)."""
        if text.isascii():
            size = len(text)
        else:
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                problem = f"{role} holding a lone surrogate (not Unicode text)"
                raise self.refuse(problem, path) from None
        if _NEEDS_ESCAPE.search(text) is not None:
            if "\x00" in text:
                raise self.refuse(f"{role} holding U+0000, which Postgres cannot store", path)
            size += sum(_ESCAPE_LENGTH.get(c, 6) - 1 for c in _NEEDS_ESCAPE.findall(text))
        return size + 2

    def _integer(self, number: int, path: _Path) -> int:
        # Compared before any conversion: Python refuses to turn an integer of more digits
        # into text (a ValueError of its own, which is no refusal naming the value).
        if abs(number) >= _TOO_MANY_DIGITS:
            raise self.refuse(f"is an integer of more than {MAX_INTEGER_DIGITS} digits", path)
        return len(str(number))


_TOO_MANY_DIGITS = 10**MAX_INTEGER_DIGITS
"""The smallest integer of more than ``MAX_INTEGER_DIGITS`` digits."""


def _where(path: _Path) -> str:
    """``$.a.b[2]`` (JSONPath) for a place inside a value; "it" for the value itself."""
    parts: list[str | int] = []
    while path is not None:
        path, part = path
        parts.append(part)
    if not parts:
        return "it"
    parts.reverse()
    text = "$"
    for at, part in enumerate(parts):
        if len(parts) > 8 and 3 <= at < len(parts) - 3:
            # A refusal for nesting would otherwise spell out every level.
            text += "…" if at == 3 else ""
        elif isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{_printable(part)}]"
    return text


def _printable(text: str, most: int = 40) -> str:
    """A short, loggable rendering of a string that may hold anything."""
    shown = text[:most].encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return repr(shown if len(text) <= most else shown + "…")


STORED: dict[str, bool] = {"durable_stored": True}
"""Validation context for what is read back from the event store: it was checked when it
entered, and a value stored before a check existed must still load (the instance it belongs
to then fails with a clear reason when it is written further, rather than never loading)."""


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("durable_stored"))


def _checked_json(value: JsonValue, info: ValidationInfo) -> JsonValue:
    if not _stored(info):
        check_json_value(value, "the value")
    return value


StorableJson = Annotated[JsonValue, AfterValidator(_checked_json)]
"""A JSON value checked by ``check_json_value`` when a message or event is validated."""


# --- ids and names --------------------------------------------------------------------------


def check_short_string(text: str, what: str) -> None:
    """Raise ``ValueRefusedError`` unless ``text`` can be an AMQP short string and a Postgres
    text value: at most ``MAX_SHORT_STRING_BYTES`` bytes in UTF-8, no U+0000, no lone
    surrogate."""
    if "\x00" in text:
        raise ValueRefusedError(what, "it holds U+0000")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueRefusedError(what, "it holds a lone surrogate (not Unicode text)") from None
    if size > MAX_SHORT_STRING_BYTES:
        raise ValueRefusedError(
            what, f"it is {size} bytes in UTF-8, more than the {MAX_SHORT_STRING_BYTES} allowed"
        )


def check_instance_id(instance_id: str, what: str = "the instance id") -> None:
    """Raise ``ValueRefusedError`` unless ``instance_id`` is one: not empty, within the
    short-string limit (it is each message's correlation id by default), and usable in a
    URL and as a storage key as Durable Functions requires (no ``/ \\ # ?``, no control
    characters, not starting with ``@``, which Durable Functions keeps for entities)."""
    if not instance_id:
        raise ValueRefusedError(what, "it is empty")
    check_short_string(instance_id, what)
    if instance_id.startswith("@"):
        raise ValueRefusedError(what, "it starts with @ (reserved for entities)")
    if _FORBIDDEN_IN_IDS.search(instance_id) is not None:
        raise ValueRefusedError(what, "it holds /, \\, #, ? or a control character")


_FORBIDDEN_IN_IDS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def _checked_short(value: str, info: ValidationInfo) -> str:
    if not _stored(info):
        check_short_string(value, "the text")
    return value


SHORT_STRING = AfterValidator(_checked_short)
"""The check of ``ShortString``, to add to a string type's other constraints."""

ShortString = Annotated[str, SHORT_STRING]
"""A string that fits an AMQP short string and a Postgres text column (ids, names)."""


def _checked_text(value: str, info: ValidationInfo) -> str:
    if "\x00" in value and not _stored(info):
        raise ValueRefusedError("the text", "it holds U+0000, which Postgres cannot store")
    return value


STORABLE_TEXT = AfterValidator(_checked_text)
"""The check of ``StorableText``, to add to a string type's other constraints."""

StorableText = Annotated[str, STORABLE_TEXT]
"""A string of any length that Postgres can store (no U+0000)."""
