"""What the CLI prints: statuses, histories and lists, for people or as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import JsonValue

from durable.client.payloads import format_time, format_timestamp, output_of, status_payload
from durable.store.entities import EntityRecord
from durable.store.events import StoredEvent
from durable.store.queries import InstanceStatus

VALUE_WIDTH = 100


def compact(value: Any, width: int = VALUE_WIDTH) -> str:
    """A JSON value on one line, cut to ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def status_text(status: InstanceStatus) -> str:
    lines = [
        f"instance  {status.instance_id}",
        f"name      {status.name}",
        f"version   {status.version if status.version is not None else '-'}",
        f"status    {status.runtime_status.value}",
        f"created   {format_time(status.created_at)}",
        f"updated   {format_time(status.last_updated_at)}",
        f"input     {compact(status.input)}",
        f"output    {compact(output_of(status))}",
    ]
    if status.custom_status is not None:
        lines.append(f"custom    {compact(status.custom_status)}")
    if status.failure is not None:
        lines.append(f"failure   {status.failure.error_type}: {status.failure.message}")
    return "\n".join(lines)


def history_text(history: Sequence[StoredEvent]) -> str:
    """One line per event: seq, time, type, and the event's own fields."""
    lines = ["history"]
    for stored in history:
        fields = stored.event.model_dump(mode="json", exclude={"event_type", "timestamp"})
        if fields.get("event_id") == -1:
            del fields["event_id"]
        details = " ".join(f"{name}={compact(value, 60)}" for name, value in fields.items())
        lines.append(
            f"  {stored.seq:>4}  {format_timestamp(stored.event.timestamp):<28}  "
            f"{stored.event.event_type:<33} {details}".rstrip()
        )
    return "\n".join(lines)


def status_json(
    status: InstanceStatus, history: Sequence[StoredEvent] | None = None
) -> dict[str, Any]:
    """The HTTP API's status payload, plus the raw event stream when asked for."""
    payload = status_payload(status)
    if history is not None:
        payload["history"] = [history_entry(stored) for stored in history]
    return payload


def history_entry(stored: StoredEvent) -> dict[str, JsonValue]:
    entry: dict[str, JsonValue] = {"seq": stored.seq}
    entry.update(stored.event.model_dump(mode="json"))
    return entry


def list_text(instances: Sequence[InstanceStatus]) -> str:
    if not instances:
        return "no instances match"
    rows = [("INSTANCE", "NAME", "VERSION", "STATUS", "CREATED", "UPDATED")] + [
        (
            s.instance_id,
            s.name,
            s.version if s.version is not None else "-",
            s.runtime_status.value,
            format_time(s.created_at),
            format_time(s.last_updated_at),
        )
        for s in instances
    ]
    return _table(rows)


def entity_json(record: EntityRecord, with_state: bool = True) -> dict[str, Any]:
    """An entity as ``GET /entities`` lists it (``state`` with ``fetchState``)."""
    listed: dict[str, Any] = {
        "entityId": {"name": record.entity_id.name, "key": record.entity_id.key},
        "lastOperationTime": format_time(record.last_modified),
    }
    if with_state:
        listed["state"] = record.state
    if record.locked_by is not None:
        listed["lockedBy"] = record.locked_by
    return listed


def entity_text(record: EntityRecord) -> str:
    return "\n".join(
        [
            f"entity    {record.entity_id.name}@{record.entity_id.key}",
            f"state     {compact(record.state)}",
            f"locked by {record.locked_by or '-'}",
            f"updated   {format_time(record.last_modified)}",
        ]
    )


def entity_list_text(records: Sequence[EntityRecord], with_state: bool) -> str:
    if not records:
        return "no entities"
    header = ("NAME", "KEY", "UPDATED", "LOCKED BY") + (("STATE",) if with_state else ())
    rows = [header] + [
        (
            r.entity_id.name,
            r.entity_id.key,
            format_time(r.last_modified),
            r.locked_by or "-",
        )
        + ((compact(r.state, 60),) if with_state else ())
        for r in records
    ]
    return _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def echo(as_json: bool, body: Any, text: str) -> None:
    """Print ``body`` as JSON with ``--json``, else ``text``."""
    typer.echo(dumps(body) if as_json else text)
