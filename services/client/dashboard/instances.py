"""The instances pages: the filtered, paged list with counts by status, and one instance.

The list takes the HTTP API's filters (``GET /instances``), under short names:
``status`` (repeatable), ``name``, ``prefix``, ``from``, ``to``, ``custom`` (JSON the custom
status contains), ``top`` and ``after`` (the continuation token of the page before). Its table
is a fragment of its own (``/instances/rows``), which htmx fetches again every few seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import JsonValue

from contracts import OrchestrationStatus, SubOrchestrationInstanceCreated
from durable.client import DurableClient
from durable.store.queries import InstanceStatus
from services.client.dashboard.common import Client, Viewer, render
from services.client.dashboard.timeline import layout
from services.client.filters import parse_statuses, parse_time
from services.client.history_view import history_events

router = APIRouter()

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
REFRESH_SECONDS = 5


@dataclass
class ListFilters:
    """The list's filters as typed in the form, and as the client's query takes them."""

    statuses: list[str] = field(default_factory=list)
    name: str = ""
    prefix: str = ""
    created_from: str = ""
    created_to: str = ""
    custom: str = ""
    top: int = DEFAULT_PAGE_SIZE
    errors: list[str] = field(default_factory=list)

    def query(self, *, with_status: bool = True) -> dict[str, Any]:
        """Keyword arguments of ``get_status_by``/``count_instances``; what does not parse is
        left out and named in ``errors``."""
        filters: dict[str, Any] = {
            "instance_id_prefix": self.prefix or None,
            "name": self.name or None,
        }
        for key, value, label in (
            ("created_time_from", self.created_from, "from"),
            ("created_time_to", self.created_to, "to"),
        ):
            filters[key] = self._parse(lambda v=value, n=label: parse_time(v, n) if v else None)
        if with_status:
            statuses = self._parse(lambda: parse_statuses(self.statuses, "status"))
            filters["runtime_status"] = statuses or None
        filters["custom_status_contains"] = self._parse(self._custom_status)
        return filters

    def _custom_status(self) -> JsonValue:
        if not self.custom.strip():
            return None
        try:
            value: JsonValue = json.loads(self.custom)
        except ValueError:
            raise ValueError(f"custom status {self.custom!r} is not JSON") from None
        return value

    def _parse(self, read: Any) -> Any:
        try:
            return read()
        except ValueError as error:
            if str(error) not in self.errors:
                self.errors.append(str(error))
            return None

    def link(self, **changes: Any) -> str:
        """This list's query string, with some fields changed (``status``: a list)."""
        fields: dict[str, Any] = {
            "status": self.statuses,
            "name": self.name,
            "prefix": self.prefix,
            "from": self.created_from,
            "to": self.created_to,
            "custom": self.custom,
            "top": str(self.top) if self.top != DEFAULT_PAGE_SIZE else "",
            **changes,
        }
        pairs = [
            (key, item)
            for key, value in fields.items()
            for item in (value if isinstance(value, list) else [value])
            if item
        ]
        return urlencode(pairs)


def _filters(
    status: Annotated[list[str] | None, Query()] = None,
    name: str = "",
    prefix: str = "",
    created_from: Annotated[str, Query(alias="from")] = "",
    created_to: Annotated[str, Query(alias="to")] = "",
    custom: str = "",
    top: str = "",
) -> ListFilters:
    size = int(top) if top.isdigit() and int(top) in PAGE_SIZES else DEFAULT_PAGE_SIZE
    statuses = [part for value in status or [] for part in value.split(",") if part.strip()]
    return ListFilters(
        statuses, name.strip(), prefix.strip(), created_from, created_to, custom, size
    )


Filters = Annotated[ListFilters, Depends(_filters)]


async def _table(durable: DurableClient, filters: ListFilters, after: str) -> dict[str, Any]:
    query = filters.query()
    counts: dict[str, int] = {}
    unfiltered = filters.query(with_status=False)
    for status in OrchestrationStatus:
        counts[status.value] = await durable.count_instances(
            **{
                **unfiltered,
                "runtime_status": [status],
            }
        )
    try:
        page = await durable.get_status_by(
            **query, top=filters.top, continuation_token=after or None
        )
    except ValueError as error:  # a continuation token this service did not issue
        filters.errors.append(str(error))
        page = await durable.get_status_by(**query, top=filters.top)
    return {
        "filters": filters,
        "counts": counts,
        "instances": page.instances,
        "next_token": page.continuation_token,
        "after": after,
        "statuses": [status.value for status in OrchestrationStatus],
        "page_sizes": PAGE_SIZES,
        "refresh_seconds": REFRESH_SECONDS,
    }


@router.get("/")
async def instance_list(
    request: Request, session: Viewer, durable: Client, filters: Filters, after: str = ""
) -> Response:
    table = await _table(durable, filters, after)
    return render(request, "instances.html", session, page="instances", **table)


@router.get("/instances/rows")
async def instance_rows(
    request: Request, session: Viewer, durable: Client, filters: Filters, after: str = ""
) -> Response:
    """The list's table alone: what auto-refresh fetches."""
    table = await _table(durable, filters, after)
    return render(request, "_instance_table.html", session, **table)


@router.get("/instance")
async def instance_page(
    request: Request, session: Viewer, durable: Client, id: str = "", done: str = ""
) -> Response:
    status = await durable.get_status(id) if id else None
    if status is None:
        return render(
            request, "missing.html", session, status_code=404, page="instances", instance_id=id
        )
    stored = (
        []
        if status.runtime_status is OrchestrationStatus.PENDING
        else (await durable.get_history(id))
    )
    events = [item.event for item in stored]
    return render(
        request,
        "instance.html",
        session,
        page="instances",
        status=status,
        timeline=layout(events, datetime.now(UTC)),
        children=_children(events),
        history=history_events(events, show_output=True, execution_id=status.execution_id),
        actions=available_actions(status),
        done=done,
    )


def _children(events: list[Any]) -> list[tuple[str, str]]:
    """(instance id, orchestrator) of every sub-orchestration the instance started."""
    seen: dict[str, str] = {}
    for event in events:
        if isinstance(event, SubOrchestrationInstanceCreated):
            seen.setdefault(event.instance_id, event.name)
    return list(seen.items())


def available_actions(status: InstanceStatus) -> list[str]:
    """The actions that make sense for the instance as it is now (others would be refused)."""
    current = status.runtime_status
    if current.is_terminal:
        actions = ["restart", "purge"]
        return ["rewind", *actions] if current is OrchestrationStatus.FAILED else actions
    suspend_or_resume = "resume" if current is OrchestrationStatus.SUSPENDED else "suspend"
    return ["raise_event", "terminate", suspend_or_resume, "restart"]
