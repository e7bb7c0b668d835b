"""How Python values become column values: JSON as text, and rows as the parallel arrays that
``unnest`` turns back into rows.

A set-based write takes each kind of row as one array per column. ``RowShape`` names those
columns once (name, element type, how to read it from a row), so the statement's ``unnest``
list and the arrays passed with it cannot drift apart; ``Statement`` numbers a statement's
parameters when the module is imported and checks, on each call, that every named argument is
given: a call site reads ``arguments(events=..., updates=...)``, not thirty-two positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

from pydantic import JsonValue, TypeAdapter

from durable.store.database import Connection
from durable.store.errors import UNSTORABLE_ERRORS

R = TypeVar("R")
S = TypeVar("S")

_JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)


def json_text(value: JsonValue) -> str | None:
    """JSON text for a jsonb column; Python ``None`` is stored as SQL NULL."""
    return None if value is None else _JSON_VALUE.dump_json(value).decode()


def json_value(text: str | None) -> JsonValue:
    return None if text is None else _JSON_VALUE.validate_json(text)


async def refuses_json(connection: Connection, text: str, column_type: str) -> bool:
    """Whether Postgres refuses ``text`` as a value of ``column_type`` (``json`` or
    ``jsonb``): a data exception or a program limit (ADR 21)."""
    if column_type not in ("json", "jsonb"):
        raise ValueError(f"not a JSON column type: {column_type!r}")
    try:
        await connection.fetchval(f"SELECT $1::{column_type} IS NULL", text)
    except UNSTORABLE_ERRORS:
        return True
    return False


@dataclass(frozen=True)
class Column(Generic[R]):
    """One column of a row shape: its name in ``unnest``'s alias, its element type, and how
    to read its value from a row."""

    name: str
    sql_type: str
    value: Callable[[R], Any]


def column(name: str, sql_type: str, value: Callable[[R], Any] | None = None) -> Column[R]:
    """A column read from the row's attribute of the same name unless ``value`` says how."""
    return Column(name, sql_type, value if value is not None else attrgetter(name))


@dataclass(frozen=True)
class RowShape(Generic[R]):
    """The columns of one kind of row, in the order a statement lists them."""

    columns: tuple[Column[R], ...]

    def arrays(self, rows: Sequence[R]) -> list[list[Any]]:
        """One array per column, each holding that column of every row."""
        return [list(map(c.value, rows)) for c in self.columns]

    def unnest(self, first_parameter: int, alias: str) -> str:
        """``unnest($n::type[], …) AS alias(name, …)``, parameters numbered from
        ``first_parameter``."""
        arrays = ", ".join(
            f"${first_parameter + i}::{c.sql_type}[]" for i, c in enumerate(self.columns)
        )
        names = ", ".join(c.name for c in self.columns)
        return f"unnest({arrays}) AS {alias}({names})"

    def via(self, part: Callable[[S], R], renamed: Mapping[str, str] | None = None) -> RowShape[S]:
        """The same columns, read from ``part(row)`` of a larger row, some ``renamed``."""

        def read(value: Callable[[R], Any]) -> Callable[[S], Any]:
            return lambda row: value(part(row))

        names = renamed or {}
        return RowShape(
            tuple(
                Column(names.get(c.name, c.name), c.sql_type, read(c.value)) for c in self.columns
            )
        )

    def __add__(self, other: RowShape[R]) -> RowShape[R]:
        return RowShape(self.columns + other.columns)

    @property
    def names(self) -> str:
        return ", ".join(c.name for c in self.columns)


class Statement:
    """Numbers a statement's parameters as its parts are declared (once, at import), and
    lays out the arguments of a call in that order, by name."""

    def __init__(self) -> None:
        self._slots: list[tuple[str, RowShape[Any] | None]] = []
        self._count = 0

    def rows(self, name: str, shape: RowShape[Any], alias: str) -> str:
        """The ``unnest(…) AS alias(…)`` of the rows passed as ``name``."""
        text = shape.unnest(self._count + 1, alias)
        self._slots.append((name, shape))
        self._count += len(shape.columns)
        return text

    def value(self, name: str, sql_type: str) -> str:
        """The placeholder of the single value passed as ``name``."""
        self._slots.append((name, None))
        self._count += 1
        return f"${self._count}::{sql_type}"

    def arguments(self, **values: Any) -> list[Any]:
        """The call's arguments: each ``rows`` part expanded into its arrays."""
        if values.keys() != {name for name, _ in self._slots}:
            expected = sorted(name for name, _ in self._slots)
            raise TypeError(f"arguments {sorted(values)} given, {expected} expected")
        arguments: list[Any] = []
        for name, shape in self._slots:
            if shape is None:
                arguments.append(values[name])
            else:
                arguments += shape.arrays(values[name])
        return arguments
