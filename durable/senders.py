"""Who may send a broker entry point's messages: RabbitMQ's validated ``user_id``.

RabbitMQ refuses a published message whose ``user_id`` property is not the name of the
publishing connection's user (it closes the channel with PRECONDITION_FAILED; only a user
with the ``impersonator`` tag may set another), so a delivery's ``user_id`` names the broker
user who published it, and a sender cannot forge it. A message that speaks for someone (an
answer naming the person who gives it) is what its sender wrote; the entry point takes it only
when its ``user_id`` identifies that person (the message's *party*):

- a party publishes as the broker user named by their id, unless the deployment maps them to
  another one (``SenderIdentities.broker_users``, party id -> broker user);
- a gateway broker user (an app that authenticates people itself) publishes for anyone.

Anything else (no ``user_id``, or another user's) is refused with the reason; the consumer
dead-letters it. ADR 20 records why, ADR 26 how an entry point asks for the check.

The same identities say which broker users publish an entry point's messages, so
``durable-ops broker-definitions`` can define them with *write* on its exchange alone
(``Senders.publishing_users``, ADR 36).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class SenderIdentitiesError(ValueError):
    """The identity settings are ambiguous or incomplete.

    Attributes:
        broker_user: the broker user the problem is about.
        people: the party ids involved.
    """

    def __init__(self, message: str, broker_user: str, people: tuple[str, ...]) -> None:
        super().__init__(message)
        self.broker_user = broker_user
        self.people = people


@dataclass(frozen=True)
class SenderIdentities:
    """Which broker user speaks for which party.

    Attributes:
        broker_users: party id -> broker user, for the parties whose broker user is not
            named by their id. A listed party speaks only as the listed user.
        gateways: broker users that speak for any party.
        role: what a party is, in the refusals' words (e.g. "payer").
        broker_users_setting: the setting ``broker_users`` comes from, named in errors.
        gateways_setting: the setting ``gateways`` comes from, named in refusals.
    """

    broker_users: Mapping[str, str] = field(default_factory=dict)
    gateways: frozenset[str] = frozenset()
    role: str = "sender"
    broker_users_setting: str = "the broker users"
    gateways_setting: str = "the gateway users"

    def __post_init__(self) -> None:
        people_of: dict[str, list[str]] = {}
        for person, broker_user in self.broker_users.items():
            if not broker_user.strip():
                raise SenderIdentitiesError(
                    f"{self.broker_users_setting} maps {person!r} to an empty broker user name",
                    broker_user,
                    (person,),
                )
            people_of.setdefault(broker_user, []).append(person)
        for broker_user, people in people_of.items():
            if len(people) > 1:
                # One user speaking for several people is a gateway; saying so explicitly
                # keeps a copy-paste slip from widening whose messages that user may send.
                raise SenderIdentitiesError(
                    f"{self.broker_users_setting} maps {sorted(people)} to the same broker user "
                    f"{broker_user!r}; list it in {self.gateways_setting} if it answers for "
                    "several people",
                    broker_user,
                    tuple(sorted(people)),
                )

    @staticmethod
    def gateway_list(text: str) -> frozenset[str]:
        """The broker users of a comma-separated setting (blanks ignored)."""
        return frozenset(user.strip() for user in text.split(",") if user.strip())

    def broker_user_of(self, party: str) -> str:
        """The broker user whose messages speak for ``party`` (besides the gateways)."""
        return self.broker_users.get(party, party)

    def publishing_users(self, parties: Iterable[str] = ()) -> dict[str, str]:
        """The broker users that may publish for ``parties`` and for every mapped party, and
        the gateways: user name -> what it is (the parties' role, or "gateway")."""
        users = {self.broker_user_of(party): self.role for party in parties}
        users.update((user, self.role) for user in self.broker_users.values())
        users.update((user, "gateway") for user in self.gateways)
        return users

    def refusal(self, party: str, user_id: str | None) -> str | None:
        """Why a message speaking for ``party`` and published by broker user ``user_id``
        cannot be taken (the dead letter's reason), or ``None`` when it can."""
        expected = self.broker_user_of(party)
        if not user_id:
            return (
                f"{self.role} {party!r} cannot be verified: the message has no user_id "
                f"property; publish it as broker user {expected!r} with user_id set to "
                "that name (RabbitMQ checks it), or through a gateway user"
            )
        if user_id == expected or user_id in self.gateways:
            return None
        return (
            f"{self.role} {party!r} is not the publishing broker user {user_id!r}: "
            f"{party!r} answers as broker user {expected!r}, and {user_id!r} is not a "
            f"gateway user ({self.gateways_setting})"
        )


@dataclass(frozen=True)
class Senders(Generic[M]):
    """An entry point's sender check: the party a message speaks for must have published it.

    Attributes:
        party: the id of the party a message speaks for (e.g. its ``payer`` field).
        identities: which broker user speaks for whom.
        parties: the parties the deployment expects messages from (e.g. the approvers of
            its hierarchy), whose broker users ``durable-ops broker-definitions`` defines;
            called only there, so the consumer never reads what it needs. None: the mapped
            parties and the gateways only.
    """

    party: Callable[[M], str]
    identities: SenderIdentities
    parties: Callable[[], Iterable[str]] | None = None

    def publishing_users(self) -> dict[str, str]:
        """The broker users that publish these messages: user name -> what it is."""
        parties = self.parties() if self.parties is not None else ()
        return self.identities.publishing_users(parties)

    def refusal(self, message: M, user_id: str | None) -> str | None:
        """Why ``message``, published by broker user ``user_id``, cannot be taken, or None."""
        return self.identities.refusal(self.party(message), user_id)
