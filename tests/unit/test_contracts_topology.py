"""The topology: partitioning and the arguments every queue is declared with."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from contracts import Topology


def test_partition_for_is_stable_and_in_range():
    topology = Topology()

    for instance_id in ["a", "proposal-42", "ü-unicode", ""]:
        partition = topology.partition_for(instance_id)
        assert 0 <= partition < topology.partitions
        assert Topology().partition_for(instance_id) == partition


def test_partition_for_is_crc32_so_every_language_can_compute_it():
    # 0xCBF43926 is the standard CRC-32 check value of "123456789".
    assert Topology(partitions=1000).partition_for("123456789") == 0xCBF43926 % 1000


def test_ten_thousand_ids_spread_over_all_sixteen_partitions():
    topology = Topology(partitions=16)
    ids = [str(uuid.UUID(int=n * 7919)) for n in range(10_000)]

    counts = Counter(topology.partition_for(instance_id) for instance_id in ids)

    assert set(counts) == set(range(16))
    assert min(counts.values()) > 10_000 / 16 * 0.8


@pytest.mark.parametrize("partitions", [0, -1, 1025])
def test_topology_rejects_a_partition_count_out_of_range(partitions):
    with pytest.raises(ValueError, match="partitions"):
        Topology(partitions=partitions)


@pytest.mark.parametrize("namespace", ["", "has space", "wild*", "hash#"])
def test_topology_rejects_a_namespace_that_is_not_a_plain_name(namespace):
    with pytest.raises(ValueError, match="namespace"):
        Topology(namespace=namespace)


def test_orchestrator_route_points_at_the_owning_partition_queue():
    topology = Topology(namespace="t1", partitions=4)
    _, bindings = topology.orchestrator_declarations()

    exchange, routing_key = topology.orchestrator_route("proposal-42")

    queue = topology.partition_queue(topology.partition_for("proposal-42"))
    assert any(
        b.queue == queue and b.exchange == exchange and b.routing_key == routing_key
        for b in bindings
    )


def test_partition_queues_are_quorum_single_active_consumer_with_dead_lettering():
    topology = Topology(namespace="t1", partitions=4, delivery_limit=7)

    queues, _ = topology.orchestrator_declarations()
    work = [q for q in queues if not q.name.endswith(".dlq")]

    assert [q.name for q in work] == [f"t1.orchestrator.p0{p}" for p in range(4)]
    for queue in work:
        assert queue.arguments == {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": 7,
            "x-dead-letter-exchange": "t1.dlx",
            "x-dead-letter-routing-key": f"{queue.name}.dlq",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


def test_every_dead_letter_routing_key_has_a_bound_dead_letter_queue():
    topology = Topology(namespace="t1", partitions=2)
    orchestrator_queues, orchestrator_bindings = topology.orchestrator_declarations()
    activity_queues, activity_bindings = topology.activity_declarations("say_hello")

    bound = {
        (b.exchange, b.routing_key): b.queue for b in orchestrator_bindings + activity_bindings
    }
    for queue in orchestrator_queues + activity_queues:
        if "x-dead-letter-routing-key" in queue.arguments:
            key = queue.arguments["x-dead-letter-routing-key"]
            assert bound[(topology.dead_letter_exchange, key)] == key


def test_activity_queues_are_competing_consumers():
    queues, _ = Topology(namespace="t1").activity_declarations("say_hello")

    assert queues[0].name == "t1.activity.say_hello"
    assert queues[0].arguments["x-queue-type"] == "quorum"
    assert "x-single-active-consumer" not in queues[0].arguments


def _every_quorum_queue(topology):
    """Every queue the product declares: partitions, an activity's, the delay cascade's,
    the dead-letter queues and a broker entry point's."""
    queues, _ = topology.orchestrator_declarations()
    queues += topology.activity_declarations("say_hello")[0]
    queues += topology.delay_declarations()[1]
    queues += topology.entry_queue_declarations([topology.workflow_name("orders.placed")])[0]
    assert all(q.arguments["x-queue-type"] == "quorum" for q in queues)
    return queues


def test_a_quorum_group_size_is_given_to_every_quorum_queue():
    queues = _every_quorum_queue(Topology(partitions=2, quorum_group_size=3))

    assert {q.arguments.get("x-quorum-initial-group-size") for q in queues} == {3}
    assert any(q.name.endswith(".dlq") for q in queues)


def test_without_a_group_size_the_broker_chooses():
    queues = _every_quorum_queue(Topology(partitions=2))

    assert not any("x-quorum-initial-group-size" in q.arguments for q in queues)


def test_a_queue_spec_takes_another_group_size_or_none_and_keeps_its_other_arguments():
    spec = Topology(quorum_group_size=5).activity_declarations("a")[0][0]

    assert spec.with_quorum_group_size(2).arguments == {
        **spec.arguments,
        "x-quorum-initial-group-size": 2,
    }
    without = spec.with_quorum_group_size(0).arguments
    assert "x-quorum-initial-group-size" not in without
    assert without["x-delivery-limit"] == spec.arguments["x-delivery-limit"]


def test_topology_rejects_a_negative_group_size():
    with pytest.raises(ValueError, match="quorum_group_size"):
        Topology(quorum_group_size=-1)


def _every_name(topology):
    exchanges, queues, _, _ = topology.delay_declarations()
    names = [e.name for e in topology.exchanges() + exchanges] + [q.name for q in queues]
    names += [q.name for q in topology.orchestrator_declarations()[0]]
    names += [q.name for q in topology.activity_declarations("say_hello")[0]]
    return names


def test_every_queue_and_exchange_is_under_the_namespace_the_delay_cascade_included():
    names = _every_name(Topology(namespace="orders", partitions=2))

    assert [n for n in names if not n.startswith("orders.")] == []
    assert "orders.timers.level.27" in names
    assert "orders.timers.orphans" in names


def test_two_namespaces_share_no_queue_or_exchange():
    first, second = _every_name(Topology(namespace="a")), _every_name(Topology(namespace="b"))

    assert set(first).isdisjoint(second)
