"""The approvals page: proposals waiting for a decision, by assignee, and the decisions made.

The client service may not import the workflows (``.importlinter``), so approval instances are
recognised by their orchestrator's name (``DF_DASHBOARD_APPROVAL_ORCHESTRATOR``, the approval
workflow's by default) and read through the fields their custom status and output carry
(``workflows.approval.messages``: ``ApprovalProgress``, ``ApprovalRecord``): ``phase``,
``stage``, ``assignee``, ``deadline``, ``reminder``, ``escalations``; ``outcome``,
``decided_by``, ``decided_at``, ``comment``. A field missing or of another type shows as empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from contracts import OrchestrationStatus
from durable.client import DurableClient
from durable.store.queries import InstanceStatus
from services.client.dashboard.common import Client, Viewer, dashboard_of, render

router = APIRouter()

WAITING = {"phase": "awaiting_response"}
"""The custom status of a proposal waiting for its assignee's answer."""
MAX_SHOWN = 500
DECISION_DAYS = 7


@dataclass(frozen=True)
class Waiting:
    """A proposal waiting for ``assignee``."""

    instance_id: str
    title: str
    author: str
    amount: str
    stage: str
    deadline: datetime | None
    reminder: bool
    escalations: int
    status: str

    def overdue(self, now: datetime) -> bool:
        return self.deadline is not None and self.deadline < now


@dataclass(frozen=True)
class Decided:
    instance_id: str
    title: str
    author: str
    outcome: str
    decided_by: str
    stage: str
    comment: str
    decided_at: datetime | None
    escalations: int


def _text(values: Any, key: str) -> str:
    value = values.get(key) if isinstance(values, dict) else None
    return "" if value is None else str(value)


def _time(values: Any, key: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(_text(values, key))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _amount(proposal: Any) -> str:
    amount = proposal.get("amount") if isinstance(proposal, dict) else None
    if not isinstance(amount, int | float):
        return ""
    return f"{amount:,.2f} {_text(proposal, 'currency')}".strip()


def waiting_by_assignee(statuses: Iterable[InstanceStatus]) -> list[tuple[str, list[Waiting]]]:
    """Proposals waiting for a decision, grouped by assignee (by name), earliest deadline
    first within each."""
    groups: dict[str, list[Waiting]] = {}
    for status in statuses:
        progress, proposal = status.custom_status, status.input
        escalations = progress.get("escalations") if isinstance(progress, dict) else None
        groups.setdefault(_text(progress, "assignee") or "(nobody)", []).append(
            Waiting(
                instance_id=status.instance_id,
                title=_text(proposal, "title"),
                author=_text(proposal, "author"),
                amount=_amount(proposal),
                stage=_text(progress, "stage"),
                deadline=_time(progress, "deadline"),
                reminder=isinstance(progress, dict) and progress.get("reminder") is True,
                escalations=escalations if isinstance(escalations, int) else 0,
                status=status.runtime_status.value,
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return [
        (assignee, sorted(rows, key=lambda row: row.deadline or far))
        for assignee, rows in sorted(groups.items())
    ]


def decisions(statuses: Iterable[InstanceStatus]) -> list[Decided]:
    """Decided proposals, the latest decision first."""
    rows = []
    for status in statuses:
        record = status.output
        escalations = record.get("escalations") if isinstance(record, dict) else None
        rows.append(
            Decided(
                instance_id=status.instance_id,
                title=_text(record, "title"),
                author=_text(record, "author"),
                outcome=_text(record, "outcome"),
                decided_by=_text(record, "decided_by"),
                stage=_text(record, "stage"),
                comment=_text(record, "comment"),
                decided_at=_time(record, "decided_at") or status.completed_at,
                escalations=len(escalations) if isinstance(escalations, list) else 0,
            )
        )
    earliest = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda row: row.decided_at or earliest, reverse=True)


async def _all(durable: DurableClient, **filters: Any) -> tuple[list[InstanceStatus], bool]:
    """Every matching instance up to ``MAX_SHOWN``, and whether there were more."""
    found: list[InstanceStatus] = []
    token = None
    while True:
        page = await durable.get_status_by(**filters, top=100, continuation_token=token)
        found += page.instances
        token = page.continuation_token
        if token is None or len(found) >= MAX_SHOWN:
            return found[:MAX_SHOWN], token is not None


@router.get("/approvals")
async def approvals_page(
    request: Request, session: Viewer, durable: Client, days: int = DECISION_DAYS
) -> Response:
    orchestrator = dashboard_of(request).settings.dashboard_approval_orchestrator
    now = datetime.now(UTC)
    days = min(max(days, 1), 365)
    waiting, more_waiting = await _all(
        durable,
        name=orchestrator,
        runtime_status=[
            OrchestrationStatus.RUNNING,
            OrchestrationStatus.SUSPENDED,
            OrchestrationStatus.PENDING,
        ],
        custom_status_contains=WAITING,
    )
    decided, more_decided = await _all(
        durable,
        name=orchestrator,
        runtime_status=[OrchestrationStatus.COMPLETED],
        created_time_from=now - timedelta(days=days),
    )
    return render(
        request,
        "approvals.html",
        session,
        page="approvals",
        orchestrator=orchestrator,
        groups=waiting_by_assignee(waiting),
        decisions=decisions(decided),
        truncated=more_waiting or more_decided,
        days=days,
        now=now,
        refresh_seconds=10,
    )
