"""Broker entry points: queues through which other systems start orchestrations or raise events.

A workflow module declares the messages it takes from the broker, and the client service
consumes them (``DF_ENTRY_POINTS`` names the declarations; unset, every function module of
``DF_FUNCTION_MODULES`` that defines ``entry_points``). An ``EntryPoint`` names:

- a queue within the deployment's namespace (``"orders.placed"`` is ``<ns>.orders.placed``),
  declared as a quorum work queue with a delivery limit and a dead-letter queue;
- the pydantic model every message must validate against: an invalid message is
  dead-lettered at once, with pydantic's reason;
- what a valid message does: ``StartOrchestration`` (an instance id and an input derived from
  the message; a message for an id in use starts nothing, so a redelivery is harmless) or
  ``RaiseEvent`` (on the instance the message names, which must exist, and run the expected
  orchestrator when one is named);
- optionally who may send it (``durable.senders.Senders``): the party a message speaks for
  must be the broker user who published it, RabbitMQ's validated ``user_id`` (ADR 20);
- optionally who publishes it: a role of the deployment (``publisher``, e.g. ``submitter``)
  and the senders' broker users, which ``durable-ops broker-definitions`` defines with write
  on the entry point's own exchange and nothing else (``EntryPoints.publishers``, ADR 36).

Outside systems publish to the queue's own exchange, ``<ns>.<queue>`` too (a fanout bound to
the queue alone); the default exchange still routes to the queue by name for users allowed
to write there.

A module's ``entry_points`` is an ``EntryPoints`` (its queues, and the exchanges it publishes
to, declared when the client service starts so subscribers can bind before the first message)
or a function without arguments returning one, called once when the client service starts:
it may read the workflow's own settings and raise to refuse a bad configuration. The
declarations are data; nothing here does I/O. ADR 26 records the design.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from contracts.envelope import Envelope
from contracts.permissions import SERVICES
from durable.senders import Senders

M = TypeVar("M", bound=BaseModel)

_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_MAX_NAME = 150
# The first words of the runtime's own names in a namespace (contracts.topology).
_RESERVED = frozenset({"orchestrator", "activity", "activities", "dlx"})
# A publisher role names a broker user (<namespace>-<role>) and its password's variable
# (DF_BROKER_PASSWORD_<ROLE>), so it is one plain word, none of the services' own.
_ROLE = re.compile(r"^[a-z][a-z0-9]{0,39}$")


class EntryPointError(ValueError):
    """A declaration the client service cannot run.

    Attributes:
        name: the queue or exchange name it is about.
    """

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def _check_name(name: str, what: str) -> None:
    if len(name) > _MAX_NAME or not _NAME.match(name):
        raise EntryPointError(
            f"invalid {what} name {name!r}: dot-separated words of letters, digits, '_' and "
            f"'-', at most {_MAX_NAME} characters",
            name,
        )
    if name.split(".")[0] in _RESERVED or name.endswith(".dlq"):
        raise EntryPointError(
            f"{what} name {name!r} would clash with the runtime's own names "
            f"(it may not start with {sorted(_RESERVED)} nor end with '.dlq')",
            name,
        )


@dataclass(frozen=True)
class StartOrchestration(Generic[M]):
    """A valid message starts ``orchestrator`` as ``instance_id(message)``.

    Whatever ``DF_START_EXISTING`` says, a message whose instance id is in use starts nothing
    (it is logged as a duplicate and acknowledged): messages arrive at least once, and a
    redelivered or re-sent one must not start the work again.

    Attributes:
        orchestrator: the orchestrator to start.
        instance_id: the instance id, from the message.
        input: the orchestration's input, from the message.
    """

    orchestrator: str
    instance_id: Callable[[M], str]
    input: Callable[[M], Any]


@dataclass(frozen=True)
class RaiseEvent(Generic[M]):
    """A valid message raises ``event`` on the instance ``instance_id(message)``.

    The event's message id is derived from the carrying message's, so a redelivery is recorded
    once. An instance that has ended takes nothing: the message is acknowledged and logged. No
    such instance, or one running another orchestrator than ``orchestrator``: dead-lettered
    with the reason, since a wrong id needs a person to look at it.

    Attributes:
        event: the external event's name.
        instance_id: the instance to raise it on, from the message.
        data: the event's data, from the message.
        orchestrator: the orchestrator the instance must run (None: any).
        instance_noun: what an instance is in the reasons' words ("no proposal 'p-1'").
    """

    event: str
    instance_id: Callable[[M], str]
    data: Callable[[M], Any]
    orchestrator: str | None = None
    instance_noun: str = "instance"


@dataclass(frozen=True)
class LogEvents:
    """The names an entry point's outcomes are logged under (alerts and dashboards key on
    them; a workflow may keep the names its operators know)."""

    started: str = "entry_point.started"
    duplicate: str = "entry_point.duplicate_start"
    raised: str = "entry_point.event_raised"
    after_end: str = "entry_point.event_after_end"
    sender_refused: str = "entry_point.sender_refused"


@dataclass(frozen=True)
class EntryPoint(Generic[M]):
    """A queue other systems publish ``message`` to, and what each valid message does.

    Attributes:
        queue: the queue's name within the deployment's namespace.
        message: the model a message's JSON body must validate against.
        action: what a valid message does.
        senders: who may send it (None: whoever may publish to the queue).
        name: what a message is called in dead-letter reasons ("invalid <name>: …");
            the model's name by default.
        log_fields: values from a message to put on every log line about it.
        logs: the names of the log events.
        publisher: the role of a broker user of the deployment that publishes here (a
            submitting system: ``submitter`` is the user ``<namespace>-submitter``), with
            write on this entry point's exchange alone; empty: none. The senders' own broker
            users publish here too.
    """

    queue: str
    message: type[M]
    action: StartOrchestration[M] | RaiseEvent[M]
    senders: Senders[M] | None = None
    name: str = ""
    log_fields: Callable[[M], Mapping[str, Any]] | None = None
    logs: LogEvents = field(default_factory=LogEvents)
    publisher: str = ""

    def __post_init__(self) -> None:
        _check_name(self.queue, "queue")
        if self.publisher and (not _ROLE.match(self.publisher) or self.publisher in SERVICES):
            raise EntryPointError(
                f"invalid publisher role {self.publisher!r} of queue {self.queue!r}: one word "
                f"of lower-case letters and digits, at most 40, none of {list(SERVICES)}",
                self.queue,
            )

    @property
    def title(self) -> str:
        return self.name or self.message.__name__


@dataclass(frozen=True)
class Exchange:
    """An exchange a workflow publishes to (``name`` within the namespace)."""

    name: str
    type: Literal["direct", "topic", "fanout"]

    def __post_init__(self) -> None:
        _check_name(self.name, "exchange")


@dataclass(frozen=True)
class EntryPoints:
    """What a workflow module declares on the broker.

    Attributes:
        entry_points: the queues the client service consumes for it.
        exchanges: the exchanges it publishes to, declared when the client service starts.
    """

    entry_points: Sequence[EntryPoint[Any]] = ()
    exchanges: Sequence[Exchange] = ()

    def __post_init__(self) -> None:
        queues = [entry.queue for entry in self.entry_points]
        for queue in queues:
            if queues.count(queue) > 1:
                raise EntryPointError(f"queue {queue!r} is declared twice", queue)

    @classmethod
    def combined(cls, declarations: Iterable[EntryPoints]) -> EntryPoints:
        """All of ``declarations`` together (a queue declared twice is refused)."""
        entry_points: list[EntryPoint[Any]] = []
        exchanges: dict[str, Exchange] = {}
        for declaration in declarations:
            entry_points += declaration.entry_points
            exchanges.update((exchange.name, exchange) for exchange in declaration.exchanges)
        return cls(entry_points, list(exchanges.values()))


@dataclass(frozen=True)
class EntryPublisher:
    """A broker user that publishes to entry points and does nothing else.

    Attributes:
        name: a role of the deployment (``role``; its user is named by the deployment,
            ``<namespace>-<role>``), or the name of a broker user of its own (a party or a
            gateway of a sender check).
        role: whether ``name`` is a role.
        what: what it is, in messages ("submitter", "approver", "gateway").
        queues: the entry points' queues it publishes to (within the namespace).
    """

    name: str
    role: bool
    what: str
    queues: tuple[str, ...]


def publishers(declared: EntryPoints) -> list[EntryPublisher]:
    """Who publishes to ``declared``'s entry points: their ``publisher`` roles and their
    senders' broker users (``Senders.publishing_users``, which may read the workflow's
    settings), each with every queue it publishes to, sorted by role, then name."""
    found: dict[tuple[bool, str], tuple[str, list[str]]] = {}
    for entry in declared.entry_points:
        named = {entry.publisher: entry.publisher} if entry.publisher else {}
        users = entry.senders.publishing_users() if entry.senders is not None else {}
        for role, each in ((True, named), (False, users)):
            for name, what in each.items():
                _, queues = found.setdefault((role, name), (what, []))
                queues.append(entry.queue)
    return [
        EntryPublisher(name, role, what, tuple(queues))
        for (role, name), (what, queues) in sorted(
            found.items(), key=lambda item: (not item[0][0], item[0][1])
        )
    ]


EntryPointsDeclaration = EntryPoints | Callable[[], EntryPoints]
"""What a module's ``entry_points`` may be."""


def message_key(message: BaseModel, amqp_message_id: str | None, body: bytes) -> str:
    """What identifies a message across redeliveries and re-sends: its envelope's
    ``message_id`` when the model has an envelope, else the AMQP ``message_id`` property,
    else a digest of the body (the same bytes are the same message)."""
    envelope = getattr(message, "envelope", None)
    if isinstance(envelope, Envelope):
        return str(envelope.message_id)
    if amqp_message_id:
        return amqp_message_id
    return "sha256:" + hashlib.sha256(body).hexdigest()


def correlation_id_of(message: BaseModel) -> str | None:
    """The envelope's correlation id, when the model has an envelope."""
    envelope = getattr(message, "envelope", None)
    return envelope.correlation_id if isinstance(envelope, Envelope) else None
