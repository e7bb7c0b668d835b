"""What each service's broker user may do: RabbitMQ permissions limited to one namespace.

RabbitMQ grants a user three regular expressions per virtual host, matched against the names
of queues and exchanges alike: *configure* (declare, delete), *write* (publish to an
exchange; bind a queue or exchange as the destination) and *read* (consume from a queue; be
the source of a binding). Two rules cost more than they seem to: declaring a queue with a
dead-letter exchange needs *read* on the queue and *write* on that exchange, and declaring an
exchange with an alternate exchange needs *read* on it and *write* on the alternate.

Every service declares what it uses each time it connects, so none depends on another having
started first (``durable.declarations``); each therefore needs the rights to declare what it
touches, which for the partition queues (declared by all three, with a dead-letter exchange)
includes *read*. What a service publishes to and consumes from is its own: the client service
reads no activity queue, the activities service no entry point, and only the orchestrator
touches the delay cascade. ``tests/unit/test_broker_permissions.py`` checks every declaration,
publish and consume of each service against these, and ADR 36 records why.

Outside systems that publish to the broker entry points (a submitting system, approvers,
gateways) get *write* on those entry points' own exchanges and nothing else
(``publisher_permissions``): each of those exchanges routes only to its queue, and without
*read* or *configure* they can bind, declare, consume or purge nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.topology import Topology

SERVICES = ("orchestrator", "activities", "client", "operator")
"""The broker users of one deployment: the three services, and ``operator`` for the
``durable`` and ``durable-ops`` commands (every right within the namespace)."""

DEFAULT_EXCHANGE = "amq.default"
"""The default exchange's name in permissions. It routes to every queue of the virtual host
by name, so only the operator, whose dead-letter re-drive publishes through it, may write to
it (ADR 20: an approver who could would reach the partition queues)."""


@dataclass(frozen=True)
class Permissions:
    """One user's regular expressions on one virtual host (Erlang's ``re``, unanchored unless
    written so, as RabbitMQ applies them)."""

    configure: str
    write: str
    read: str

    def allows(self, right: str, name: str) -> bool:
        """Whether ``right`` (``configure``, ``write`` or ``read``) on ``name`` is granted."""
        pattern: str = getattr(self, right)
        return pattern != "" and re.search(pattern, name) is not None


def _names(namespace: str, relative: Iterable[str]) -> str:
    """An anchored pattern matching ``<namespace>.<r>`` for each pattern ``r``; ``^$`` (the
    empty name only, which names nothing) when there are none."""
    alternatives = sorted(set(relative))
    if not alternatives:
        return "^$"
    return rf"^{re.escape(namespace)}\.({'|'.join(alternatives)})$"


def broker_permissions(
    topology: Topology,
    *,
    entry_queues: Iterable[str] = (),
    workflow_exchanges: Iterable[str] = (),
) -> dict[str, Permissions]:
    """Each user's permissions for ``topology``'s namespace.

    Args:
        topology: the deployment's names.
        entry_queues: the broker entry points' queues within the namespace
            (``EntryPoint.queue``, such as ``approval.responses``), which the client service
            declares and consumes (ADR 26).
        workflow_exchanges: the exchanges the workflows publish to, within the namespace
            (``EntryPoints.exchanges``, such as ``approval.requests``): declared by the client
            service, declared and published to by the activities that publish there.
    """
    ns = topology.namespace
    core = ["orchestrator", "activities", "dlx"]
    partitions = [r"orchestrator\.p\d+", r"orchestrator\.p\d+\.dlq"]
    activity = [r"activity\..+"]
    timers = [r"timers\..+"]
    entries = [re.escape(name) for name in entry_queues]
    entry_dlqs = [rf"{name}\.dlq" for name in entries]
    exchanges = [re.escape(name) for name in workflow_exchanges]
    return {
        "orchestrator": Permissions(
            configure=_names(ns, core + partitions + activity + timers),
            write=_names(ns, core + partitions + activity + timers),
            read=_names(ns, core + partitions + activity + timers),
        ),
        "activities": Permissions(
            configure=_names(ns, core + partitions + activity + exchanges),
            write=_names(ns, core + partitions + activity + exchanges),
            read=_names(ns, core + partitions + activity),
        ),
        "client": Permissions(
            configure=_names(ns, core + partitions + entries + entry_dlqs + exchanges),
            # The entry points' queues: bound to their own exchanges (write on the destination).
            write=_names(ns, ["orchestrator", "dlx", *partitions, *entries, *entry_dlqs]),
            read=_names(ns, ["orchestrator", "dlx", partitions[0], *entries]),
        ),
        "operator": Permissions(
            configure=rf"^{re.escape(ns)}\.",
            write=rf"^({re.escape(ns)}\..*|{re.escape(DEFAULT_EXCHANGE)})$",
            read=rf"^{re.escape(ns)}\.",
        ),
    }


NO_RIGHT = ""
"""RabbitMQ's pattern for no right at all (a synonym of ``^$``)."""


def publisher_permissions(topology: Topology, entry_queues: Iterable[str]) -> Permissions:
    """A user who publishes to the broker entry points ``entry_queues`` (within the
    namespace, ``EntryPoint.queue``) and does nothing else.

    *Write* on their exchanges (``Topology.entry_exchange``, the queues' own names, so the
    pattern also matches the queues: *write* on a queue lets a user bind it as a
    destination, which needs *read* on the source too, and these users read nothing). No
    *configure*, no *read*, and never the default exchange (``amq.default``), which reaches
    every queue of the virtual host, the partition queues included (ADR 20, ADR 36).
    """
    names = [topology.entry_exchange(topology.workflow_name(queue)) for queue in entry_queues]
    prefix = f"{topology.namespace}."
    relative = [re.escape(name.removeprefix(prefix)) for name in names]
    return Permissions(
        configure=NO_RIGHT, write=_names(topology.namespace, relative), read=NO_RIGHT
    )
