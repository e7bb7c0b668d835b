"""Reading the filter values people type (HTTP query strings, CLI options): times, statuses.

Both the HTTP API and the CLI use these, so a value means the same thing wherever it is given.
Each raises ``ValueError`` with a message that names the value and says what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from contracts import OrchestrationStatus

_STATUSES = {status.value.casefold(): status for status in OrchestrationStatus}


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 time (``2026-01-31``, ``2026-01-31T09:00:00Z``, with an offset or not).

    Times without an offset are taken as UTC, as Durable Functions' own times are.
    """
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{name} {value!r} is not an ISO 8601 time (e.g. 2026-01-31T09:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def parse_statuses(values: Iterable[str], name: str = "runtimeStatus") -> list[OrchestrationStatus]:
    """Runtime statuses from comma-separated values (``Running,Pending``), in any letter case."""
    statuses: list[OrchestrationStatus] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            status = _STATUSES.get(part.strip().casefold())
            if status is None:
                valid = ", ".join(s.value for s in OrchestrationStatus)
                raise ValueError(f"{name} {part.strip()!r} is not one of: {valid}")
            if status not in statuses:
                statuses.append(status)
    return statuses
