"""Which broker user may answer for which approver, from the approval entry points' settings."""

from __future__ import annotations

import json

import pytest

from durable.senders import SenderIdentities
from durable.senders import SenderIdentitiesError as ApproverIdentitiesError
from workflows.approval.inbound import ApprovalEntrySettings, approver_identities


def identities(monkeypatch: pytest.MonkeyPatch, **env: str) -> SenderIdentities:
    monkeypatch.delenv("DF_APPROVAL_BROKER_USERS", raising=False)
    monkeypatch.delenv("DF_APPROVAL_GATEWAY_USERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return approver_identities(ApprovalEntrySettings())


def test_by_default_a_person_answers_as_the_broker_user_named_by_their_id_and_nobody_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = identities(monkeypatch)

    assert people.refusal("mia", "mia") is None
    assert people.refusal("mia", "bob") == (
        "approver 'mia' is not the publishing broker user 'bob': 'mia' answers as broker user "
        "'mia', and 'bob' is not a gateway user (DF_APPROVAL_GATEWAY_USERS)"
    )
    assert people.gateways == frozenset()


@pytest.mark.parametrize("user_id", [None, ""])
def test_an_answer_without_user_id_is_refused_naming_the_missing_property(
    monkeypatch: pytest.MonkeyPatch, user_id: str | None
) -> None:
    refusal = identities(monkeypatch).refusal("mia", user_id)

    assert refusal is not None
    assert "approver 'mia' cannot be verified: the message has no user_id property" in refusal


def test_a_mapped_person_answers_only_as_their_mapped_broker_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = identities(
        monkeypatch, DF_APPROVAL_BROKER_USERS=json.dumps({"mia": "svc-mia", "hugo": "h.k"})
    )

    assert people.refusal("mia", "svc-mia") is None
    assert people.refusal("hugo", "h.k") is None
    assert people.refusal("mia", "mia") is not None
    assert people.refusal("mia", "h.k") is not None
    assert people.refusal("dana", "dana") is None  # not listed: the default still applies


def test_a_gateway_answers_for_anyone_and_is_listed_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = identities(monkeypatch, DF_APPROVAL_GATEWAY_USERS=" approvals-app , portal,")

    assert people.gateways == {"approvals-app", "portal"}
    assert people.refusal("mia", "approvals-app") is None
    assert people.refusal("hugo", "portal") is None
    assert people.refusal("mia", None) is not None  # a gateway's answer needs user_id too


def test_one_broker_user_for_two_people_is_refused_as_a_gateway_in_disguise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ApproverIdentitiesError) as raised:
        identities(monkeypatch, DF_APPROVAL_BROKER_USERS=json.dumps({"mia": "x", "hugo": "x"}))

    assert raised.value.broker_user == "x"
    assert raised.value.people == ("hugo", "mia")
    assert "DF_APPROVAL_GATEWAY_USERS" in str(raised.value)


def test_an_empty_broker_user_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ApproverIdentitiesError, match="empty broker user"):
        identities(monkeypatch, DF_APPROVAL_BROKER_USERS=json.dumps({"mia": " "}))
