"""What the property-based tests generate, and the documented rules they hold the services to.

Strategies for arbitrary JSON values (everything Python's ``json`` reads and writes, including
what no layer after the boundary can store: NaN, infinities, U+0000, lone surrogates, nesting
past ``DF_MAX_JSON_DEPTH``, integers past Python's 4,300 digits) and arbitrary strings for ids
and names; the problems the README and ``contracts.limits`` document for each, stated again
here independently of the code that enforces them; and what "the same value" means once a
value has come back.

Numbers: JSON numbers come back as the same numbers, not the same text. The ``instances``
read model keeps values as Postgres ``jsonb``, which stores a number as ``numeric``: ``1e23``
comes back as ``100000000000000000000000``, ``-0.0`` as ``0``, ``5e-324`` as a decimal of 324
places, ``1.0`` as ``1.0``. So numbers are compared by their decimal value, the text Python
writes for them read as a ``Decimal`` (``Decimal(repr(x))``); everything else must be
identical: strings, booleans, null, the key set of objects, and the order of arrays.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import unicodedata
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    # The same examples on every run and machine, so that CI is reproducible.
    derandomize=True,
    database=None,
    # No shrinking: a stuck instance costs a whole deadline per attempt. Each check names
    # the value or string it fails for instead (``run_batch``).
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the HTTP client is reused safely
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
"""The property-based tests' settings: 60 batches of up to 10 examples each per test."""

DEADLINE_SECONDS = 30.0
"""How long an accepted example's instance may take to end, its batch running alongside."""


async def run_batch(checks: list[tuple[str, Coroutine[Any, Any, None]]]) -> None:
    """Run the checks of a batch's examples at once, each labelled with what it checks; a
    failure names its example (Hypothesis does not shrink these batches)."""

    async def labelled(label: str, check: Coroutine[Any, Any, None]) -> None:
        try:
            await check
        except AssertionError as error:
            raise AssertionError(f"{error}\n    for {label}") from None

    async with asyncio.TaskGroup() as group:
        for label, check in checks:
            group.create_task(labelled(label, check))


MAX_DEPTH = 64
"""DF_MAX_JSON_DEPTH's default: objects and arrays nested in one value."""

MAX_ID_BYTES = 255
"""AMQP short strings: an id's UTF-8 bytes."""

MAX_INTEGER_DIGITS = 4300
"""The most digits an integer may have (Python's own limit on converting it to text)."""

# Text over all of Unicode, lone surrogates included (Hypothesis leaves them out by default),
# with the characters the rules are about drawn often enough to matter: as characters of one
# alphabet they would be a few among a million.
_SPECIAL_CHARACTERS = st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff"]
)

unicode_text = st.text(st.characters(), max_size=20)
"""Any Unicode text (no lone surrogates): what a URL can carry."""

any_text = st.lists(
    st.text(st.characters(exclude_categories=()), max_size=8) | _SPECIAL_CHARACTERS, max_size=4
).map("".join)
"""Any Python string: also U+0000 and lone surrogates."""


class HugeInteger(int):
    """An integer of more than 4,300 digits that prints as a power of ten (``int``'s own
    ``repr`` refuses, which would break Hypothesis's report of a failing example)."""

    def __repr__(self) -> str:
        return f"{'-' if self < 0 else ''}10**{_digits(self) - 1}"

    def __str__(self) -> str:
        return int.__repr__(self)  # as any integer's: refused past 4,300 digits


def _integer_of(digits: int) -> int:
    """The largest integer of ``abs(digits)`` digits, negative for negative ``digits``;
    past 4,300 digits a ``HugeInteger``."""
    number = 10 ** abs(digits) - 1
    number = -number if digits < 0 else number
    return HugeInteger(number) if abs(digits) > MAX_INTEGER_DIGITS else number


_LONGEST = MAX_INTEGER_DIGITS
# Drawn by digit count so that Hypothesis prints the strategy short.
_HUGE_INTEGERS = st.sampled_from([19, -19, 20, _LONGEST, -_LONGEST, _LONGEST + 1, -_LONGEST - 200])
_NOT_TOO_LONG_INTEGERS = _HUGE_INTEGERS.filter(lambda digits: abs(digits) <= _LONGEST)
_EDGE_FLOATS = st.sampled_from(
    [-0.0, 5e-324, 2.2250738585072014e-308, 1e23, 1e308, 1.7976931348623157e308, 0.1, 1e-7]
) | st.sampled_from([math.nan, math.inf, -math.inf])


def json_values(*, huge_integers: bool = True) -> st.SearchStrategy[Any]:
    """Arbitrary JSON data as Python's ``json`` reads it: null, booleans, integers (beyond 64
    bits, and beyond 4,300 digits when ``huge_integers``), floats (NaN, infinities, -0.0,
    subnormals, 1e308), strings and keys of any characters, arrays and objects, sometimes
    nested just under or over ``MAX_DEPTH``."""
    digits = _HUGE_INTEGERS if huge_integers else _NOT_TOO_LONG_INTEGERS
    integers = st.integers() | st.integers(-(2**200), 2**200) | digits.map(_integer_of)
    scalars = (
        st.none() | st.booleans() | integers | st.floats() | _EDGE_FLOATS | any_text | unicode_text
    )
    keys = unicode_text | any_text
    values = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=12,
    )
    deep = st.builds(nested, values, st.integers(min_value=MAX_DEPTH - 3, max_value=MAX_DEPTH + 2))
    return st.one_of(values, values, values, deep)


def nested(value: Any, levels: int) -> Any:
    """``value`` inside ``levels`` arrays and objects, taking turns."""
    for level in range(levels):
        value = [value] if level % 2 else {"n": value}
    return value


@contextmanager
def integers_of_any_length() -> Iterator[None]:
    """Let this process write and read integers of more than 4,300 digits as text, to send
    them the way any other client could."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def json_text(value: Any) -> str:
    """``value`` as JSON text in ASCII, whatever it holds: ``NaN`` and ``Infinity`` for those
    floats, ``\\u`` escapes for U+0000 and lone surrogates, integers of any length."""
    with integers_of_any_length():
        return json.dumps(value, ensure_ascii=True, allow_nan=True)


def read_json_text(text: str) -> Any:
    """What ``text`` means, read as Python's ``json`` does (escaped surrogate pairs become
    one character; lone ones stay), integers of any length included."""
    with integers_of_any_length():
        return json.loads(text)


def depth(value: Any) -> int:
    """Containers nested in ``value``: 0 for a scalar, 1 for ``[]``."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _numbers(value: Any) -> Iterator[int | float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _numbers(item)


def has_lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(character) <= 0xDFFF for character in text)


def value_problems(value: Any) -> set[str]:
    """The problems the README documents for a value that cannot be stored (empty for a
    value every layer must take): "not finite", "U+0000", "lone surrogate", "too deep",
    "too many digits". A refusal names one of them, in words each boundary chooses."""
    problems = set()
    numbers = list(_numbers(value))
    if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
        problems.add("not finite")
    if any(isinstance(n, int) and _digits(n) > MAX_INTEGER_DIGITS for n in numbers):
        problems.add("too many digits")
    strings = list(_strings(value))
    if any("\x00" in text for text in strings):
        problems.add("U+0000")
    if any(has_lone_surrogate(text) for text in strings):
        problems.add("lone surrogate")
    if depth(value) > MAX_DEPTH:
        problems.add("too deep")
    return problems


def _digits(number: int) -> int:
    with integers_of_any_length():
        return len(int.__repr__(abs(number)))


def id_problems(text: str) -> set[str]:
    """The problems the README documents for an instance id that is refused (empty for an
    id every layer must take): "empty", "U+0000", "lone surrogate", "too long", "starts
    with @", "forbidden character" (``/ \\ # ?`` or a control character)."""
    problems = name_problems(text)
    if not text:
        problems.add("empty")
    if text.startswith("@"):
        problems.add("starts with @")
    if any(c in "/\\#?" or unicodedata.category(c) == "Cc" for c in text):
        problems.add("forbidden character")
    return problems


def name_problems(text: str) -> set[str]:
    """The problems documented for an event name, any text that fits an AMQP short string:
    "U+0000", "lone surrogate", "too long"."""
    problems = set()
    if "\x00" in text:
        problems.add("U+0000")
    if has_lone_surrogate(text):
        problems.add("lone surrogate")
    elif len(text.encode()) > MAX_ID_BYTES:
        problems.add("too long")
    return problems


def same_json(sent: Any, received: Any) -> bool:
    """Whether ``received`` is ``sent`` come back: numbers by decimal value, everything else
    identical (see the module's docstring)."""
    if isinstance(sent, bool) or isinstance(received, bool):
        return sent is received
    if isinstance(sent, int | float) and isinstance(received, int | float):
        with integers_of_any_length():
            return Decimal(repr(sent)) == Decimal(repr(received))
    if isinstance(sent, list) and isinstance(received, list):
        return len(sent) == len(received) and all(map(same_json, sent, received))
    if isinstance(sent, dict) and isinstance(received, dict):
        return sent.keys() == received.keys() and all(
            same_json(item, received[key]) for key, item in sent.items()
        )
    return type(sent) is type(received) and sent == received
