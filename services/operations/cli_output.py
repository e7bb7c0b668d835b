"""What durable-ops prints on stdout: one line per finding, for people or as JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from services.common.dead_letters import DeadLetter
from services.operations.invariants import Violation
from services.operations.rebuild import RebuildSummary, RowReport
from services.operations.replay_check import ReplayResult

VALUE_WIDTH = 60


def line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def to_json(value: Any) -> Any:
    """Python values (times, enums, models) as JSON values."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))


def compact(value: Any, width: int = VALUE_WIDTH) -> str:
    text = dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(as_json: bool, data: dict[str, Any], text: str) -> None:
    line(dumps({"kind": "summary", **data}) if as_json else text)


def replay_result(result: ReplayResult, as_json: bool) -> None:
    if as_json:
        mismatch = result.mismatch
        line(
            dumps(
                {
                    "kind": "instance",
                    "instance_id": result.instance_id,
                    "name": result.name,
                    "events": result.events,
                    "matches": result.matches,
                    "skipped": result.skipped,
                    "mismatch": None
                    if mismatch is None
                    else {
                        "event_id": mismatch.event_id,
                        "seq": mismatch.seq,
                        "history": mismatch.history,
                        "code": mismatch.code,
                    },
                }
            )
        )
        return
    if result.skipped is not None:
        line(f"skipped   {result.instance_id}  {result.name}: {result.skipped}")
    elif result.mismatch is not None:
        line(f"MISMATCH  {result.instance_id}  {result.name}: {result.mismatch.describe()}")
    else:
        line(f"ok        {result.instance_id}  {result.name} ({result.events} events)")


def violation(found: Violation, as_json: bool) -> None:
    if as_json:
        line(
            dumps(
                {
                    "kind": "violation",
                    "instance_id": found.instance_id,
                    "execution_id": found.execution_id,
                    "seq": found.seq,
                    "rule": found.rule,
                    "reason": found.reason,
                }
            )
        )
        return
    where = f"execution {found.execution_id}" if found.execution_id is not None else ""
    if found.seq is not None:
        where += f"{' ' if where else ''}seq {found.seq}"
    line(
        f"VIOLATION  {found.instance_id}  {found.rule}  {where}: {found.reason}".replace("  :", ":")
    )


def row_report(report: RowReport, as_json: bool) -> None:
    if as_json:
        line(
            dumps(
                {
                    "kind": "instance",
                    "instance_id": report.instance_id,
                    "differences": {
                        name: {"live": live, "rebuilt": rebuilt}
                        for name, (live, rebuilt) in report.differences.items()
                    },
                    "repaired": report.repaired,
                    "skipped": report.skipped,
                }
            )
        )
        return
    if report.skipped is not None:
        line(f"skipped   {report.instance_id}: {report.skipped}")
        return
    changes = "; ".join(
        f"{name}: {compact(live)} → {compact(rebuilt)}"
        for name, (live, rebuilt) in report.differences.items()
    )
    label = "repaired" if report.repaired else "differs "
    line(f"{label}  {report.instance_id}  {changes}")


def rebuild_summary_json(summary: RebuildSummary) -> dict[str, Any]:
    return {
        "checked": summary.checked,
        "differing": summary.differing,
        "repaired": summary.repaired,
        "skipped": summary.skipped,
        "kept": summary.kept,
        "busy": summary.busy,
    }


def rebuild_text(summary: RebuildSummary) -> str:
    text = (
        f"{summary.checked:,} instances checked: {summary.differing:,} differ from their "
        f"events, {summary.repaired:,} repaired"
    )
    if summary.skipped:
        text += "; not rebuilt: " + ", ".join(f"{n} {why}" for why, n in summary.skipped.items())
    if summary.kept:
        text += "; kept as they are: " + ", ".join(
            f"{name} ({n})" for name, n in sorted(summary.kept.items())
        )
    if summary.busy:
        text += f"; {len(summary.busy)} busy (try again)"
    return text


def dead_letter(letter: DeadLetter, as_json: bool, verb: str) -> None:
    if as_json:
        line(dumps({"kind": "message", "action": verb, **letter.to_json()}))
        return
    origin = letter.original_queue or "?"
    if letter.original_exchange is not None or letter.original_routing_key:
        origin += f" (exchange {letter.original_exchange!r}, key {letter.original_routing_key!r})"
    deaths = ", ".join(
        f"{d.get('reason')} x{d.get('count')} from {d.get('queue')} at {d.get('time')}"
        for d in letter.deaths
    )
    try:
        body = letter.body.decode()
    except UnicodeDecodeError:
        body = f"<{len(letter.body)} bytes, not UTF-8>"
    line(
        f"{verb:<9} #{letter.position}  id {letter.message_id}  type {letter.type}\n"
        f"          reason: {letter.reason}\n"
        f"          from:   {origin}\n"
        + (f"          deaths: {deaths}\n" if deaths else "")
        + f"          body:   {body if len(body) <= 200 else body[:199] + '…'}"
    )
