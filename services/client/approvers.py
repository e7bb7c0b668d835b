"""Who may answer for an approver over the broker: RabbitMQ's validated ``user_id``.

RabbitMQ refuses a published message whose ``user_id`` property is not the name of the
publishing connection's user (it closes the channel with PRECONDITION_FAILED; only a user
with the ``impersonator`` tag may set another), so a delivery's ``user_id`` names the broker
user who published it, and a sender cannot forge it. The ``approver`` field of an
``ApprovalResponse`` is what the sender wrote; a response is taken only when its ``user_id``
identifies that approver:

- a person answers as the broker user named by their person id, unless the deployment maps
  them to another one (``DF_APPROVAL_BROKER_USERS``, person id -> broker user);
- a gateway broker user (``DF_APPROVAL_GATEWAY_USERS``: an approval app that authenticates
  people itself) answers for anyone.

Anything else (no ``user_id``, or another user's) is refused with the reason; the consumer
dead-letters it. ADR 20 records why, docs/approval.md the trust model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.client.settings import ClientSettings

GATEWAY_SETTING = "DF_APPROVAL_GATEWAY_USERS"
BROKER_USERS_SETTING = "DF_APPROVAL_BROKER_USERS"


class ApproverIdentitiesError(ValueError):
    """The approval identity settings are ambiguous or incomplete.

    Attributes:
        broker_user: the broker user the problem is about.
        people: the person ids involved.
    """

    def __init__(self, message: str, broker_user: str, people: tuple[str, ...]) -> None:
        super().__init__(message)
        self.broker_user = broker_user
        self.people = people


@dataclass(frozen=True)
class ApproverIdentities:
    """Which broker user answers for which approver.

    Attributes:
        broker_users: person id -> broker user, for the people whose broker user is not
            named by their person id. A listed person answers only as the listed user.
        gateways: broker users that answer on behalf of any approver.
    """

    broker_users: Mapping[str, str] = field(default_factory=dict)
    gateways: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        people_of: dict[str, list[str]] = {}
        for person, broker_user in self.broker_users.items():
            if not broker_user.strip():
                raise ApproverIdentitiesError(
                    f"{BROKER_USERS_SETTING} maps {person!r} to an empty broker user name",
                    broker_user,
                    (person,),
                )
            people_of.setdefault(broker_user, []).append(person)
        for broker_user, people in people_of.items():
            if len(people) > 1:
                # One user answering for several people is a gateway; saying so explicitly
                # keeps a copy-paste slip from widening whose answers that user may give.
                raise ApproverIdentitiesError(
                    f"{BROKER_USERS_SETTING} maps {sorted(people)} to the same broker user "
                    f"{broker_user!r}; list it in {GATEWAY_SETTING} if it answers for several "
                    "people",
                    broker_user,
                    tuple(sorted(people)),
                )

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ApproverIdentities:
        """Raises ``ApproverIdentitiesError`` for a mapping that gives two people one user."""
        gateways = frozenset(
            user.strip() for user in settings.approval_gateway_users.split(",") if user.strip()
        )
        return cls(dict(settings.approval_broker_users), gateways)

    def broker_user_of(self, approver: str) -> str:
        """The broker user whose messages speak for ``approver`` (besides the gateways)."""
        return self.broker_users.get(approver, approver)

    def refusal(self, approver: str, user_id: str | None) -> str | None:
        """Why a response naming ``approver`` and published by broker user ``user_id``
        cannot be taken (the dead letter's reason), or ``None`` when it can."""
        expected = self.broker_user_of(approver)
        if not user_id:
            return (
                f"approver {approver!r} cannot be verified: the message has no user_id "
                f"property; publish it as broker user {expected!r} with user_id set to "
                "that name (RabbitMQ checks it), or through a gateway user"
            )
        if user_id == expected or user_id in self.gateways:
            return None
        return (
            f"approver {approver!r} is not the publishing broker user {user_id!r}: "
            f"{approver!r} answers as broker user {expected!r}, and {user_id!r} is not a "
            f"gateway user ({GATEWAY_SETTING})"
        )
