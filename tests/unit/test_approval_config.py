"""Choosing approvers from the configured hierarchy, and reading the settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from workflows.approval.config import (
    DEFAULT_HIERARCHY,
    ApprovalSettings,
    Hierarchy,
)
from workflows.approval.messages import ProposalSubmitted

HIERARCHY = {
    "levels": [
        {
            "stage": "manager",
            "approver": "mia",
            "departments": {"platform": "pat"},
            "max_amount": 10_000,
        },
        {"stage": "head_of_department", "approver": "hugo", "max_amount": 100_000},
        {"stage": "director", "approver": "dana", "response_seconds": 600},
    ]
}


def proposal(amount: float, department: str | None = None) -> ProposalSubmitted:
    return ProposalSubmitted(
        proposal_id="p-1",
        author="alice",
        title="t",
        amount=amount,
        department=department,
        submitted_at="2026-01-01T09:00:00Z",
    )


@pytest.mark.parametrize(
    ("amount", "stages"),
    [
        (0, ["manager", "head_of_department", "director"]),
        (10_000, ["manager", "head_of_department", "director"]),
        (10_000.01, ["head_of_department", "director"]),
        (250_000, ["director"]),
    ],
)
def test_the_size_of_a_proposal_decides_the_first_level(amount, stages):
    chain = Hierarchy.model_validate(HIERARCHY).chain_for(proposal(amount))

    assert [level.stage for level in chain] == stages


def test_a_proposal_larger_than_every_limit_goes_to_the_top_level():
    capped = Hierarchy.model_validate({"levels": HIERARCHY["levels"][:2]})

    assert [level.stage for level in capped.chain_for(proposal(10**9))] == ["head_of_department"]


def test_the_default_hierarchy_sends_large_proposals_to_the_head_of_department():
    assert DEFAULT_HIERARCHY.chain_for(proposal(500))[0].stage == "manager"
    assert DEFAULT_HIERARCHY.chain_for(proposal(50_000))[0].stage == "head_of_department"


def test_settings_from_the_environment_make_the_plan(monkeypatch):
    monkeypatch.setenv("DF_APPROVAL_HIERARCHY", json.dumps(HIERARCHY))
    monkeypatch.setenv("DF_APPROVAL_RESPONSE_SECONDS", "2")
    monkeypatch.setenv("DF_APPROVAL_REMINDER_SECONDS", "1.5")
    monkeypatch.setenv("DF_APPROVAL_REMINDERS", "2")
    monkeypatch.setenv("DF_APPROVAL_ON_EXPIRY", "auto_rejected")

    plan = ApprovalSettings().plan_for(proposal(500, department="platform"))

    assert [(a.stage, a.assignee, a.response_seconds) for a in plan.chain] == [
        ("manager", "pat", 2),
        ("head_of_department", "hugo", 2),
        ("director", "dana", 600),
    ]
    assert {a.reminder_seconds for a in plan.chain} == {1.5}
    assert (plan.reminders, plan.on_expiry) == (2, "auto_rejected")


def test_the_hierarchy_file_is_read_for_each_plan(monkeypatch, tmp_path):
    path = tmp_path / "hierarchy.json"
    path.write_text(json.dumps(HIERARCHY))
    monkeypatch.setenv("DF_APPROVAL_HIERARCHY_FILE", str(path))
    settings = ApprovalSettings()
    assert settings.plan_for(proposal(1)).chain[0].assignee == "mia"

    path.write_text(json.dumps({"levels": [{"stage": "owner", "approver": "olga"}]}))

    assert settings.plan_for(proposal(1)).chain[0].assignee == "olga"


def test_setting_both_hierarchy_sources_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("DF_APPROVAL_HIERARCHY", json.dumps(HIERARCHY))
    monkeypatch.setenv("DF_APPROVAL_HIERARCHY_FILE", str(tmp_path / "h.json"))

    with pytest.raises(ValidationError, match="not both"):
        ApprovalSettings()


@pytest.mark.parametrize(
    ("levels", "words"),
    [
        ([], "at least 1"),
        ([{"stage": "a", "approver": "x"}, {"stage": "a", "approver": "y"}], "unique"),
        (
            [
                {"stage": "a", "approver": "x", "max_amount": 5},
                {"stage": "b", "approver": "y", "max_amount": 5},
            ],
            "must exceed",
        ),
        (
            [{"stage": "a", "approver": "x"}, {"stage": "b", "approver": "y", "max_amount": 5}],
            "limits must rise",
        ),
        ([{"stage": "a", "approver": "has space"}], "pattern"),
    ],
)
def test_an_inconsistent_hierarchy_is_refused_with_the_reason(levels, words):
    with pytest.raises(ValidationError, match=words):
        Hierarchy.model_validate({"levels": levels})
