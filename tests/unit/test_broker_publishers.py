"""Who publishes to the broker entry points gets a broker user that may publish there and do
nothing else (``contracts.permissions.publisher_permissions``), derived from the workflows'
settings (``durable-ops broker-definitions``, ADR 36).

The approval's submitter may publish to the submissions exchange, each approver and gateway
to the responses exchange; what each publishes is recorded as in
``tests/unit/test_broker_permissions.py``, and checked against every queue and exchange the
services declare (recorded there from the services' own code), the default exchange and
other namespaces' names.
"""

from __future__ import annotations

import json

import pytest

from contracts.permissions import DEFAULT_EXCHANGE, Permissions
from durable.entry_points import EntryPoints
from durable.settings import CommonSettings
from services.common.loader import load_entry_points
from services.operations.broker_definitions import (
    DefinedUser,
    DefinitionsError,
    definitions,
    deployment_users,
)
from tests.unit.test_broker_permissions import (
    ACCESSES,
    TOPOLOGY,
    Access,
    RecordingChannel,
    publishes,
)
from workflows.approval.topology import ApprovalTopology

HIERARCHY = {
    "levels": [
        {
            "stage": "manager",
            "approver": "mia",
            "max_amount": 10_000,
            "departments": {"platform": "pat"},
        },
        {"stage": "head_of_department", "approver": "hugo"},
    ]
}
APPROVAL = ApprovalTopology(TOPOLOGY)


def approval_declared(monkeypatch: pytest.MonkeyPatch, **settings: str) -> EntryPoints:
    monkeypatch.setenv("DF_APPROVAL_HIERARCHY", json.dumps(HIERARCHY))
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return load_entry_points(CommonSettings(function_modules="workflows.approval"))


@pytest.fixture
def users(monkeypatch: pytest.MonkeyPatch) -> dict[str, DefinedUser]:
    declared = approval_declared(
        monkeypatch,
        DF_APPROVAL_BROKER_USERS=json.dumps({"mia": "mia@corp", "dana": "dana@corp"}),
        DF_APPROVAL_GATEWAY_USERS="approvals-web, mail-bridge",
    )
    return {user.name: user for user in deployment_users(TOPOLOGY, declared)}


def publishers(users: dict[str, DefinedUser]) -> dict[str, DefinedUser]:
    return {name: user for name, user in users.items() if not user.required}


def test_the_submitter_every_approver_and_every_gateway_get_a_user_of_their_own(
    users: dict[str, DefinedUser],
) -> None:
    found = {(user.what, name, user.password_variable) for name, user in publishers(users).items()}

    assert found == {
        ("submitter", "orders-1-submitter", "DF_BROKER_PASSWORD_SUBMITTER"),
        # mapped (DF_APPROVAL_BROKER_USERS), by their person id, a department's approver
        ("approver", "mia@corp", "DF_BROKER_PASSWORD_USER_MIA_CORP"),
        ("approver", "hugo", "DF_BROKER_PASSWORD_USER_HUGO"),
        ("approver", "pat", "DF_BROKER_PASSWORD_USER_PAT"),
        # mapped although not in the hierarchy (yet): may answer, so needs the right
        ("approver", "dana@corp", "DF_BROKER_PASSWORD_USER_DANA_CORP"),
        ("gateway", "approvals-web", "DF_BROKER_PASSWORD_USER_APPROVALS_WEB"),
        ("gateway", "mail-bridge", "DF_BROKER_PASSWORD_USER_MAIL_BRIDGE"),
    }
    assert "mia" not in users  # a mapped person answers only as the mapped user


def test_the_services_and_the_operator_keep_their_users_and_are_required(
    users: dict[str, DefinedUser],
) -> None:
    required = {name for name, user in users.items() if user.required}

    assert required == {f"orders-1-{role}" for role in ACCESSES} | {"orders-1-operator"}


def allowed(permissions: Permissions, names: set[str]) -> set[tuple[str, str]]:
    return {
        (right, name)
        for right in ("configure", "write", "read")
        for name in names
        if permissions.allows(right, name)
    }


async def every_declared_name() -> set[str]:
    """Every queue and exchange the services touch, and what lies outside the namespace."""
    names = {access.name for service in ACCESSES.values() for access in await service()}
    assert APPROVAL.approval_responses_queue in names
    return names | {DEFAULT_EXCHANGE, "amq.topic", "orders-2.approval.responses", ""}


def published(*exchanges: str) -> list[Access]:
    channel = RecordingChannel()
    publishes(channel, *exchanges)
    return channel.accesses


@pytest.mark.parametrize(
    ("user", "exchange"),
    [
        ("orders-1-submitter", APPROVAL.proposal_submissions_exchange),
        ("mia@corp", APPROVAL.approval_responses_exchange),
        ("pat", APPROVAL.approval_responses_exchange),
        ("approvals-web", APPROVAL.approval_responses_exchange),
    ],
)
async def test_a_publisher_may_publish_where_it_publishes_and_nothing_else(
    users: dict[str, DefinedUser], user: str, exchange: str
) -> None:
    permissions = users[user].permissions
    [access] = published(exchange)

    assert permissions.allows(access.right, access.name)
    # The exchange's name is also its queue's: write on that queue binds nothing without read.
    assert allowed(permissions, await every_declared_name()) == {("write", exchange)}
    assert (permissions.configure, permissions.read) == ("", "")


async def test_an_approver_may_not_submit_and_the_submitter_may_not_answer(
    users: dict[str, DefinedUser],
) -> None:
    [submit] = published(APPROVAL.proposal_submissions_exchange)
    [answer] = published(APPROVAL.approval_responses_exchange)

    assert not users["hugo"].permissions.allows(submit.right, submit.name)
    assert not users["orders-1-submitter"].permissions.allows(answer.right, answer.name)


def test_the_entry_exchanges_route_only_to_their_own_queue() -> None:
    exchanges, _, bindings = APPROVAL.declarations()
    entries = {APPROVAL.proposal_submissions_exchange, APPROVAL.approval_responses_exchange}

    assert {(e.name, e.type) for e in exchanges if e.name in entries} == {
        (name, "fanout") for name in entries
    }
    assert {(b.exchange, b.queue) for b in bindings if b.exchange in entries} == {
        (name, name) for name in entries
    }


def test_a_publisher_is_defined_without_tags(users: dict[str, DefinedUser]) -> None:
    # Tags such as impersonator (any user_id) or management are given by hand, never here.
    defined = publishers(users)
    body = definitions(
        {name: user.permissions for name, user in defined.items()},
        {name: name for name in defined},
        dict.fromkeys(defined, "secret"),
        "/",
    )

    assert [user["tags"] for user in body["users"]] == [[]] * len(defined)


@pytest.mark.parametrize(
    ("mapping", "clash"),
    [
        ({"mia": "orders-1-client"}, "the broker user 'orders-1-client'"),
        ({"mia": "mia.corp", "hugo": "mia@corp"}, "DF_BROKER_PASSWORD_USER_MIA_CORP"),
    ],
    ids=["an approver named like a service's user", "two users, one password variable"],
)
def test_two_users_in_one_are_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch, mapping: dict[str, str], clash: str
) -> None:
    declared = approval_declared(monkeypatch, DF_APPROVAL_BROKER_USERS=json.dumps(mapping))

    with pytest.raises(DefinitionsError, match="would share") as refused:
        deployment_users(TOPOLOGY, declared)

    assert clash in str(refused.value)


def test_a_deployment_without_the_approval_consumers_defines_no_publisher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = approval_declared(monkeypatch, DF_APPROVAL_CONSUMERS="false")

    assert all(user.required for user in deployment_users(TOPOLOGY, declared))
