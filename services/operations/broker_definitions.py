"""``durable-ops broker-definitions``: RabbitMQ definitions for one deployment's broker users.

One user per service (``<namespace>-orchestrator``, ``-activities``, ``-client``) and one for
the operator's commands (``-operator``), each with the permissions ``contracts.permissions``
gives it on the deployment's virtual host: its namespace's queues and exchanges and nothing
else. Then the users that publish to the broker entry points and do nothing else
(``durable.entry_points.publishers``): a role of the deployment such as the approval's
``<namespace>-submitter``, and the senders' own users (each approver of the hierarchy, the
gateways), with write on those entry points' exchanges alone. The output is RabbitMQ's
definitions JSON, imported with ``rabbitmqctl import_definitions <file>`` or the management
API (``POST /api/definitions``); importing it again sets the passwords (and clears the tags)
of the users it names and leaves everything else as is.

Generated rather than a file in the repository: the namespace, the virtual host, the entry
points' queues (``DF_ENTRY_POINTS``, or the function modules'), who publishes to them (the
workflows' settings) and the passwords are each deployment's own. Passwords are read from
``DF_BROKER_PASSWORD_<ROLE>`` (``..._ORCHESTRATOR``, ``..._ACTIVITIES``, ``..._CLIENT``,
``..._OPERATOR``, which are required; ``..._SUBMITTER``) and, for a user of its own,
``DF_BROKER_PASSWORD_USER_<NAME>`` (the name in capitals, every other character than a letter
or a digit as ``_``: ``mia@corp`` reads ``DF_BROKER_PASSWORD_USER_MIA_CORP``). A publisher
without its password is left out, with a line on stderr: the definitions change no user they
do not name. Passwords are written only as salted SHA-256 hashes, RabbitMQ's default scheme.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer

from contracts.permissions import (
    SERVICES,
    Permissions,
    broker_permissions,
    publisher_permissions,
)
from contracts.topology import Topology
from durable.broker_nodes import node_urls
from durable.entry_points import EntryPoints, publishers
from services.common.loader import load_entry_points
from services.operations.session import EXIT_OK, Session, run, usage

PASSWORD_VARIABLE = "DF_BROKER_PASSWORD_{}"
USER_PASSWORD_VARIABLE = "DF_BROKER_PASSWORD_USER_{}"
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64 of a 4-byte salt followed by
    SHA-256 of the salt and the password."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def user_names(
    namespace: str, prefix: str | None = None, roles: tuple[str, ...] = SERVICES
) -> dict[str, str]:
    """Each role's broker user name: ``<prefix><role>``, the prefix ``<namespace>-`` unless
    given (user names are the broker's, not a virtual host's, so they carry the namespace)."""
    start = f"{namespace}-" if prefix is None else prefix
    return {role: f"{start}{role}" for role in roles}


class DefinitionsError(ValueError):
    """The deployment's users cannot be defined as its settings say (two of them would be
    one broker user, or read one password variable)."""


@dataclass(frozen=True)
class DefinedUser:
    """A broker user of the definitions.

    Attributes:
        name: the broker user's name.
        permissions: its permissions on the virtual host.
        password_variable: where its password is read from.
        what: what it is, in messages ("the client service", "approver", …).
        required: whether the definitions need it (the services and the operator); the
            others are left out when their password is not given.
    """

    name: str
    permissions: Permissions
    password_variable: str
    what: str
    required: bool


def user_password_variable(user: str) -> str:
    """The variable of a (non-role) broker user's password: ``mia@corp`` reads
    ``DF_BROKER_PASSWORD_USER_MIA_CORP``."""
    return USER_PASSWORD_VARIABLE.format(re.sub(r"[^A-Z0-9]", "_", user.upper()))


def deployment_users(
    topology: Topology, declared: EntryPoints, prefix: str | None = None
) -> list[DefinedUser]:
    """Every broker user of a deployment whose entry points are ``declared``: the services'
    and the operator's, then who publishes to the entry points (which may read the
    workflows' settings: the approval's hierarchy, for one).

    Raises ``DefinitionsError`` when two would be one broker user or share a password
    variable (``mia.corp`` and ``mia@corp``; an approver named like a service's user).
    """
    services = user_names(topology.namespace, prefix)
    users = [
        DefinedUser(
            services[role],
            granted,
            PASSWORD_VARIABLE.format(role.upper()),
            f"the {role} service" if role != "operator" else "the operator",
            required=True,
        )
        for role, granted in permissions_for(topology, declared).items()
    ]
    for publisher in publishers(declared):
        name, variable = (
            (
                user_names(topology.namespace, prefix, (publisher.name,))[publisher.name],
                PASSWORD_VARIABLE.format(publisher.name.upper()),
            )
            if publisher.role
            else (publisher.name, user_password_variable(publisher.name))
        )
        granted = publisher_permissions(topology, publisher.queues)
        users.append(DefinedUser(name, granted, variable, publisher.what, required=False))
    for key in ("name", "password_variable"):
        seen: dict[str, DefinedUser] = {}
        for user in users:
            other = seen.setdefault(getattr(user, key), user)
            if other is not user:
                raise DefinitionsError(
                    f"{other.what} {other.name!r} and {user.what} {user.name!r} would share "
                    f"{'the broker user' if key == 'name' else 'the password variable'} "
                    f"{getattr(user, key)!r}: give one of them another broker user "
                    "(DF_APPROVAL_BROKER_USERS for an approver)"
                )
    return users


def permissions_for(topology: Topology, declared: EntryPoints) -> dict[str, Permissions]:
    """The permissions of every role for a deployment whose entry points are ``declared``."""
    return broker_permissions(
        topology,
        entry_queues=[entry.queue for entry in declared.entry_points],
        workflow_exchanges=[exchange.name for exchange in declared.exchanges],
    )


def definitions(
    permissions: Mapping[str, Permissions],
    users: Mapping[str, str],
    passwords: Mapping[str, str],
    vhost: str,
) -> dict[str, Any]:
    """RabbitMQ definitions: each role's user and its permissions on ``vhost``, which must
    exist (an import that named it would reset an existing one's metadata)."""
    return {
        "users": [
            {
                "name": users[role],
                "password_hash": password_hash(passwords[role]),
                "hashing_algorithm": HASHING_ALGORITHM,
                "tags": [],
            }
            for role in permissions
        ],
        "permissions": [
            {
                "user": users[role],
                "vhost": vhost,
                "configure": granted.configure,
                "write": granted.write,
                "read": granted.read,
            }
            for role, granted in permissions.items()
        ],
    }


def vhost_of(amqp_url: str) -> str:
    """The virtual host ``DF_AMQP_URL`` (its first node) connects to: ``/`` unless named."""
    path = urlsplit(node_urls(amqp_url)[0]).path
    return unquote(path[1:]) if len(path) > 1 else "/"


Vhost = Annotated[
    str | None,
    typer.Option("--vhost", help="The virtual host (default: DF_AMQP_URL's).", show_default=False),
]
Prefix = Annotated[
    str | None,
    typer.Option(
        "--user-prefix",
        help="Prefix of the user names (default: '<namespace>-').",
        show_default=False,
    ),
]


def broker_definitions_command(vhost: Vhost = None, user_prefix: Prefix = None) -> None:
    """Print RabbitMQ definitions: one user per service and the operator, each limited to the
    namespace's queues and exchanges, and the entry points' publishers (submitters,
    approvers, gateways) that may only publish to them (passwords from
    DF_BROKER_PASSWORD_<ROLE> and DF_BROKER_PASSWORD_USER_<NAME>)."""

    async def work(session: Session) -> int:
        settings = session.settings
        try:
            declared = load_entry_points(settings)
        except Exception as error:  # an unknown reference, or a declaration refusing it
            raise usage(f"loading the entry points (DF_ENTRY_POINTS) failed: {error}") from None
        try:
            users = deployment_users(settings.topology, declared, user_prefix)
        except Exception as error:  # two users in one, or a workflow's setting refused
            raise usage(f"defining the entry points' publishers failed: {error}") from None
        missing = [u.password_variable for u in users if u.required and not _password(u)]
        if missing:
            raise usage(f"set the broker users' passwords: {', '.join(missing)}")
        for user in users:
            if not _password(user):
                typer.echo(
                    f"left out {user.what} {user.name!r}: set {user.password_variable} to "
                    "define it",
                    err=True,
                )
        defined = [user for user in users if _password(user)]
        typer.echo(
            json.dumps(
                definitions(
                    {user.name: user.permissions for user in defined},
                    {user.name: user.name for user in defined},
                    {user.name: _password(user) for user in defined},
                    vhost or vhost_of(settings.amqp_url),
                ),
                indent=2,
            )
        )
        return EXIT_OK

    run(work)


def _password(user: DefinedUser) -> str:
    return os.environ.get(user.password_variable, "")
