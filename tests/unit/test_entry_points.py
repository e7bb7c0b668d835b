"""Declaring broker entry points, and finding the ones a deployment's settings name (ADR 26)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from contracts import Envelope, Topology
from durable.entry_points import (
    EntryPoint,
    EntryPointError,
    EntryPoints,
    Exchange,
    StartOrchestration,
    message_key,
)
from durable.senders import SenderIdentities
from durable.settings import CommonSettings
from services.common.loader import EntryPointsError, load_entry_points
from tests.apps.orders import PAYMENTS_QUEUE, PLACED_QUEUE, OrderPlaced


class Plain(BaseModel):
    text: str


class Enveloped(BaseModel):
    envelope: Envelope
    text: str


def start(queue: str) -> EntryPoint[Plain]:
    return EntryPoint(queue, Plain, StartOrchestration("echo", lambda m: m.text, lambda m: m.text))


def settings(**values: str | None) -> CommonSettings:
    return CommonSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "queue",
    ["orchestrator.p00", "activity.echo", "dlx", "orders.placed.dlq", "orders placed", "", "a..b"],
)
def test_a_queue_name_that_would_clash_with_the_runtimes_or_break_routing_is_refused(queue):
    with pytest.raises(EntryPointError) as raised:
        start(queue)

    assert raised.value.name == queue


@pytest.mark.parametrize("role", ["client", "operator", "Submitter", "sub_mitter", "x" * 41])
def test_a_publisher_role_that_is_a_services_or_no_plain_word_is_refused(role):
    with pytest.raises(EntryPointError, match="invalid publisher role"):
        EntryPoint(
            "a.q",
            Plain,
            StartOrchestration("echo", lambda m: m.text, lambda m: m.text),
            publisher=role,
        )


def test_names_are_within_the_namespace_and_declared_as_work_queues_with_dead_letter_queues():
    topology = Topology(namespace="t1")

    queues, bindings = topology.entry_queue_declarations([topology.workflow_name("orders.placed")])

    by_name = {queue.name: queue.arguments for queue in queues}
    assert by_name["t1.orders.placed"]["x-dead-letter-routing-key"] == "t1.orders.placed.dlq"
    assert by_name["t1.orders.placed"]["x-delivery-limit"] == topology.delivery_limit
    assert by_name["t1.orders.placed.dlq"] == {"x-queue-type": "quorum"}
    assert [(b.queue, b.exchange) for b in bindings] == [
        ("t1.orders.placed", "t1.orders.placed"),  # its own exchange, for outside publishers
        ("t1.orders.placed.dlq", "t1.dlx"),
    ]
    assert topology.entry_exchange_declarations(["t1.orders.placed"])[0].type == "fanout"


def test_one_queue_declared_twice_is_refused_even_across_modules():
    with pytest.raises(EntryPointError, match="declared twice"):
        EntryPoints.combined([EntryPoints([start("a.q")]), EntryPoints([start("a.q")])])


def test_exchanges_declared_by_several_modules_are_declared_once():
    both = EntryPoints.combined(
        [EntryPoints(exchanges=[Exchange("a.out", "topic")])] * 2,
    )

    assert both.exchanges == [Exchange("a.out", "topic")]


def test_a_message_is_known_by_its_envelope_its_amqp_message_id_or_its_bytes():
    envelope = Envelope(
        message_id=uuid.UUID(int=5),
        instance_id="i",
        correlation_id="c",
        type="Enveloped",
        sent_at=datetime.now(UTC),
    )

    assert message_key(Enveloped(envelope=envelope, text="x"), "amqp-id", b"{}") == str(
        uuid.UUID(int=5)
    )
    assert message_key(Plain(text="x"), "amqp-id", b"{}") == "amqp-id"
    same = message_key(Plain(text="x"), None, b'{"text": "x"}')
    assert same == message_key(Plain(text="y"), None, b'{"text": "x"}')
    assert same != message_key(Plain(text="x"), None, b'{"text": "y"}')


def test_senders_are_refused_in_the_words_of_the_entry_point():
    payers = SenderIdentities({"ann": "ann@corp"}, frozenset({"till"}), role="payer")

    assert payers.refusal("ann", "ann@corp") is None
    assert payers.refusal("bob", "till") is None
    assert payers.refusal("ann", "ann") == (
        "payer 'ann' is not the publishing broker user 'ann': 'ann' answers as broker user "
        "'ann@corp', and 'ann' is not a gateway user (the gateway users)"
    )


# --- which entry points a deployment runs ------------------------------------------------------


def test_unset_the_function_modules_that_declare_entry_points_are_taken():
    declared = load_entry_points(
        settings(function_modules="workflows.samples,tests.apps.orders", entry_points=None)
    )

    assert [entry.queue for entry in declared.entry_points] == [PLACED_QUEUE, PAYMENTS_QUEUE]
    assert declared.entry_points[0].message is OrderPlaced


def test_the_default_deployment_runs_the_approval_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DF_ENTRY_POINTS", raising=False)
    monkeypatch.delenv("DF_FUNCTION_MODULES", raising=False)
    monkeypatch.delenv("DF_APPROVAL_CONSUMERS", raising=False)

    declared = load_entry_points(CommonSettings())

    assert [entry.queue for entry in declared.entry_points] == [
        "approval.submissions",
        "approval.responses",
    ]
    assert {exchange.name for exchange in declared.exchanges} == {
        "approval.requests",
        "approval.outcomes",
    }


def test_named_entry_points_are_taken_alone_and_functions_are_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DF_APPROVAL_CONSUMERS", "false")
    declared = load_entry_points(
        settings(entry_points="tests.apps.orders:entry_points, workflows.approval")
    )

    assert [entry.queue for entry in declared.entry_points] == [PLACED_QUEUE, PAYMENTS_QUEUE]


def test_an_empty_setting_runs_no_entry_points():
    declared = load_entry_points(settings(entry_points=""))

    assert (list(declared.entry_points), list(declared.exchanges)) == ([], [])


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("tests.apps.nope", "cannot import entry points 'tests.apps.nope'"),
        (
            "workflows.samples",
            "'workflows.samples' (from DF_ENTRY_POINTS) defines no 'entry_points'",
        ),
        ("tests.apps.orders:PLACED_QUEUE", "is not an EntryPoints declaration"),
    ],
)
def test_a_named_reference_that_declares_nothing_is_a_clear_error(reference, problem):
    with pytest.raises(EntryPointsError, match=re.escape(problem)):
        load_entry_points(settings(entry_points=reference))
