"""The routes the documentation lists and the routes the app serves, as ``"METHOD /path"``
strings, for ``tests/unit/test_route_table.py``.

A route table is a Markdown table whose first column is headed ``route``; each first cell holds
one or more routes in backticks, written for people:

- ``POST /orchestrators/{functionName}[/{instanceId}]``: a part in brackets may be left out;
- ``POST /instances/{instanceId}/terminate\\|suspend\\|resume?reason=``: alternatives for the
  last segment, and a query string, which is not part of the route;
- ``POST /instances/{instanceId}/suspend?reason=…``, ``/resume?reason=…``: a second route
  that replaces the last segment of the one before it, with the same method.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
_CODE = re.compile(r"`([^`]+)`")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_table(page: Path, heading: str) -> set[str]:
    """The routes of the first route table under ``heading`` (a whole heading line)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows = _table_after(lines[start + 1 :])
    routes: set[str] = set()
    for row in rows:
        routes |= routes_in_cell(row[0])
    return routes


def _table_after(lines: list[str]) -> list[list[str]]:
    """The body rows of the first table headed ``route`` (cells split, unescaped pipes only)."""
    rows: list[list[str]] = []
    in_table = False
    for line in lines:
        if line.startswith("#") and not in_table:
            break  # the section ended without a route table
        if not line.startswith("|"):
            if in_table:
                break
            continue
        cells = [cell.strip() for cell in _CELL_SEPARATOR.split(line.strip())[1:-1]]
        if not in_table:
            if cells[0] != "route":
                continue
            in_table = True
        elif not set(cells[0]) <= {"-", " ", ":"}:
            rows.append(cells)
    assert rows, "no route table found"
    return rows


def routes_in_cell(cell: str) -> set[str]:
    """``{"METHOD /path", ...}`` for every route a table cell names."""
    routes: set[str] = set()
    method = ""
    previous = ""
    for code in _CODE.findall(cell):
        written = code.replace("\\|", "|")
        first, _, rest = written.partition(" ")
        if first in _METHODS:
            method, written = first, rest
        elif written.startswith("/") and previous:
            written = previous.rsplit("/", 1)[0] + written
        else:
            continue  # a value, not a route
        assert method, f"{code!r}: a route without a method before it"
        path = written.split("?", 1)[0]
        previous = path
        for expanded in _expand(path):
            routes.add(f"{method} {expanded}")
    return routes


def _expand(path: str) -> Iterator[str]:
    """Every spelling of ``path``: each ``[optional]`` part in or out, each ``a|b`` of the last
    segment."""
    parts = _OPTIONAL.split(path)  # literal, optional, literal, optional, …
    optional = parts[1::2]
    for choice in itertools.product((False, True), repeat=len(optional)):
        spelt = parts[0]
        for included, part, after in zip(choice, optional, parts[2::2], strict=True):
            spelt += (part if included else "") + after
        head, _, last = spelt.rpartition("/")
        for alternative in last.split("|"):
            yield f"{head}/{alternative}"


def served_routes(app: FastAPI) -> dict[str, bool]:
    """``{"METHOD /path": in the OpenAPI document}`` for every route the app serves, reading
    through included routers (FastAPI 0.165 keeps them as ``_IncludedRouter`` in
    ``app.routes``; earlier versions copied their routes in)."""
    served: dict[str, bool] = {}
    for path, methods, in_schema in _walk(app.routes, "", True):
        for method in methods - {"HEAD"}:
            served[f"{method} {path}"] = in_schema
    return served


def _walk(routes: list[Any], prefix: str, in_schema: bool) -> Iterator[tuple[str, set[str], bool]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = route.include_context
            yield from _walk(
                included.routes,
                prefix + context.prefix,
                in_schema and context.include_in_schema,
            )
        elif getattr(route, "methods", None):
            yield prefix + route.path, set(route.methods), in_schema and route.include_in_schema
