"""The typed row builders: a statement's placeholders and its arguments agree by name."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from durable.store.batch import WRITE_BATCH, BatchWrite
from durable.store.columns import RowShape, Statement, column


@dataclass(frozen=True)
class Point:
    x: int
    label: str


POINTS: RowShape[Point] = RowShape(
    (column("x", "bigint"), column("label", "text", lambda p: p.label.upper()))
)


def test_rows_become_one_array_per_column_in_the_shapes_order() -> None:
    assert POINTS.arrays([Point(1, "a"), Point(2, "b")]) == [[1, 2], ["A", "B"]]
    assert POINTS.unnest(3, "p") == "unnest($3::bigint[], $4::text[]) AS p(x, label)"


def test_a_statement_numbers_its_parts_and_lays_out_arguments_by_name() -> None:
    statement = Statement()
    limit = statement.value("limit", "int")
    points = statement.rows("points", POINTS, "p")

    assert (limit, points) == ("$1::int", "unnest($2::bigint[], $3::text[]) AS p(x, label)")
    assert statement.arguments(points=[Point(7, "z")], limit=10) == [10, [7], ["Z"]]


def test_a_statement_refuses_arguments_it_does_not_declare_or_misses() -> None:
    statement = Statement()
    statement.value("limit", "int")
    with pytest.raises(TypeError, match="expected"):
        statement.arguments(limt=10)


def test_a_shape_read_through_a_larger_row_keeps_its_columns_renamed() -> None:
    pairs = POINTS.via(lambda pair: pair[0], {"label": "name"}) + POINTS.via(lambda p: p[1])
    assert pairs.names == "x, name, x, label"
    assert pairs.arrays([(Point(1, "a"), Point(2, "b"))]) == [[1], ["A"], [2], ["B"]]


def test_the_batch_statement_takes_as_many_arguments_as_it_has_placeholders() -> None:
    placeholders = {int(n) for n in re.findall(r"\$(\d+)", WRITE_BATCH)}
    assert placeholders == set(range(1, len(BatchWrite().arguments()) + 1))
