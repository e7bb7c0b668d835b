"""Reading a command's instance selection from its options: times and statuses.

The selection itself, and reading the selected ids, is ``durable.store.selection``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from contracts import OrchestrationStatus
from services.operations.session import usage


def parse_time(text: str | None, option: str) -> datetime | None:
    """ISO 8601; a time without an offset is UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise usage(f"{option} {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_statuses(values: Iterable[str] | None) -> tuple[OrchestrationStatus, ...]:
    """Statuses from repeated or comma-separated options, in any case."""
    known = {status.value.lower(): status for status in OrchestrationStatus}
    statuses: list[OrchestrationStatus] = []
    for value in values or ():
        for part in value.split(","):
            if not part.strip():
                continue
            status = known.get(part.strip().lower())
            if status is None:
                raise usage(
                    f"unknown status {part.strip()!r} (one of: "
                    + ", ".join(s.value for s in OrchestrationStatus)
                    + ")"
                )
            statuses.append(status)
    return tuple(dict.fromkeys(statuses))
