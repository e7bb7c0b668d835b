"""Who approves what, and how long they have: the approval workflow's per-deployment settings.

Read only by the ``plan_approval`` activity, never by the orchestrator: the orchestrator must
replay identically, so it works from the plan the activity returned, which its history keeps.
Changing the settings affects proposals submitted afterwards, never one already running.

Environment variables (besides the common ``DF_*`` ones):

``DF_APPROVAL_HIERARCHY``
    JSON: ``{"levels": [{"stage": "manager", "approver": "mia", "max_amount": 10000}, …]}``,
    lowest level first. ``max_amount`` is the largest amount a level decides; a proposal starts
    at the first level whose limit covers it (a level without a limit covers everything) and
    escalates up from there. ``departments`` maps a proposal's department to that level's
    approver for it; ``response_seconds``/``reminder_seconds`` override the deadlines per level.
``DF_APPROVAL_HIERARCHY_FILE``
    A JSON file with the same content, read again for every new proposal (edits apply without
    a restart). Set one of the two, not both.
``DF_APPROVAL_RESPONSE_SECONDS`` / ``DF_APPROVAL_REMINDER_SECONDS``
    Time to answer a request, and to answer after a reminder (default two days and one day).
``DF_APPROVAL_REMINDERS``
    Reminders to the same person before reassigning to the next level (default 1).
``DF_APPROVAL_ON_EXPIRY``
    ``expired`` (default) or ``auto_rejected``: the outcome when the last level never answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from durable.settings import CommonSettings
from workflows.approval.messages import PersonId, ProposalSubmitted

Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400)]
StageName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
OnExpiry = Literal["expired", "auto_rejected"]

DAY = 86400.0


class HierarchyLevel(BaseModel):
    """One level of the approval hierarchy (e.g. the managers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: StageName
    approver: PersonId
    departments: dict[str, PersonId] = {}
    max_amount: float | None = Field(default=None, ge=0)
    response_seconds: Seconds | None = None
    reminder_seconds: Seconds | None = None

    def approver_for(self, department: str | None) -> str:
        return self.departments.get(department or "", self.approver)


class Hierarchy(BaseModel):
    """Levels from the lowest (asked first for small proposals) to the top."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: list[HierarchyLevel] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        stages = [level.stage for level in self.levels]
        if len(set(stages)) != len(stages):
            raise ValueError(f"stage names must be unique, got {stages}")
        limit: float | None = -1.0
        for level in self.levels:
            if limit is None and level.max_amount is not None:
                raise ValueError(
                    f"level {level.stage!r} has a max_amount above a level without one: "
                    "limits must rise from the lowest level to the top"
                )
            if limit is not None and level.max_amount is not None and level.max_amount <= limit:
                raise ValueError(f"max_amount of {level.stage!r} must exceed the level below")
            limit = level.max_amount
        return self

    def approvers(self) -> list[str]:
        """Everyone who may be asked, at any level and for any department, in order."""
        people = [
            person
            for level in self.levels
            for person in (level.approver, *level.departments.values())
        ]
        return list(dict.fromkeys(people))

    def chain_for(self, proposal: ProposalSubmitted) -> list[HierarchyLevel]:
        """The levels that may handle ``proposal``: the first whose limit covers it, then up."""
        for index, level in enumerate(self.levels):
            if level.max_amount is None or proposal.amount <= level.max_amount:
                return self.levels[index:]
        return self.levels[-1:]  # larger than every limit: only the top decides


DEFAULT_HIERARCHY = Hierarchy(
    levels=[
        HierarchyLevel(stage="manager", approver="mia", max_amount=10_000),
        HierarchyLevel(stage="head_of_department", approver="hugo"),
        HierarchyLevel(stage="director", approver="dana"),
    ]
)
"""A placeholder organisation: replace it with ``DF_APPROVAL_HIERARCHY(_FILE)``."""


class Assignment(BaseModel):
    """One level of a proposal's chain: who is asked, and how long they have."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    assignee: PersonId
    response_seconds: float
    reminder_seconds: float


class ApprovalPlan(BaseModel):
    """Everything the orchestrator needs to decide, fixed when the proposal is taken up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: list[Assignment] = Field(min_length=1)
    reminders: int = Field(ge=0)
    on_expiry: OnExpiry


class ApprovalSettings(CommonSettings):
    """The approval workflow's settings (``DF_APPROVAL_*``), plus the common ones."""

    approval_hierarchy: Hierarchy = DEFAULT_HIERARCHY
    approval_hierarchy_file: Path | None = None
    approval_response_seconds: Seconds = 2 * DAY
    approval_reminder_seconds: Seconds = 1 * DAY
    approval_reminders: int = Field(default=1, ge=0, le=10)
    approval_on_expiry: OnExpiry = "expired"

    @model_validator(mode="after")
    def _one_hierarchy_source(self) -> Self:
        if {"approval_hierarchy", "approval_hierarchy_file"} <= self.model_fields_set:
            raise ValueError("set DF_APPROVAL_HIERARCHY or DF_APPROVAL_HIERARCHY_FILE, not both")
        return self

    def hierarchy(self) -> Hierarchy:
        """The configured hierarchy (the file is read now, so edits apply to new proposals)."""
        if self.approval_hierarchy_file is None:
            return self.approval_hierarchy
        text = self.approval_hierarchy_file.read_text(encoding="utf-8")
        return Hierarchy.model_validate_json(text)

    def plan_for(self, proposal: ProposalSubmitted) -> ApprovalPlan:
        chain = [
            Assignment(
                stage=level.stage,
                assignee=level.approver_for(proposal.department),
                response_seconds=level.response_seconds or self.approval_response_seconds,
                reminder_seconds=level.reminder_seconds or self.approval_reminder_seconds,
            )
            for level in self.hierarchy().chain_for(proposal)
        ]
        return ApprovalPlan(
            chain=chain, reminders=self.approval_reminders, on_expiry=self.approval_on_expiry
        )
