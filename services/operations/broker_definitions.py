"""``durable-ops broker-definitions``: RabbitMQ definitions for one deployment's broker users.

One user per service (``<namespace>-orchestrator``, ``-activities``, ``-client``) and one for
the operator's commands (``-operator``), each with the permissions ``contracts.permissions``
gives it on the deployment's virtual host: its namespace's queues and exchanges and nothing
else. The output is RabbitMQ's definitions JSON, imported with
``rabbitmqctl import_definitions <file>`` or the management API (``POST /api/definitions``);
importing it again changes the passwords to the ones given and leaves everything else as is.

Generated rather than a file in the repository: the namespace, the virtual host, the entry
points' queues (``DF_ENTRY_POINTS``, or the function modules') and the passwords are each
deployment's own. Passwords are read from ``DF_BROKER_PASSWORD_<USER>`` (``..._ORCHESTRATOR``,
``..._ACTIVITIES``, ``..._CLIENT``, ``..._OPERATOR``) and written only as salted SHA-256
hashes, RabbitMQ's default scheme.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer

from contracts.permissions import SERVICES, Permissions, broker_permissions
from contracts.topology import Topology
from durable.broker_nodes import node_urls
from durable.entry_points import EntryPoints
from services.common.loader import load_entry_points
from services.operations.session import EXIT_OK, Session, run, usage

PASSWORD_VARIABLE = "DF_BROKER_PASSWORD_{}"
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64 of a 4-byte salt followed by
    SHA-256 of the salt and the password."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def user_names(namespace: str, prefix: str | None = None) -> dict[str, str]:
    """Each role's broker user name: ``<prefix><role>``, the prefix ``<namespace>-`` unless
    given (user names are the broker's, not a virtual host's, so they carry the namespace)."""
    start = f"{namespace}-" if prefix is None else prefix
    return {service: f"{start}{service}" for service in SERVICES}


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
    namespace's queues and exchanges (passwords from DF_BROKER_PASSWORD_<USER>)."""

    async def work(session: Session) -> int:
        settings = session.settings
        missing = [
            PASSWORD_VARIABLE.format(role.upper())
            for role in SERVICES
            if not os.environ.get(PASSWORD_VARIABLE.format(role.upper()))
        ]
        if missing:
            raise usage(f"set the broker users' passwords: {', '.join(missing)}")
        try:
            declared = load_entry_points(settings)
        except Exception as error:  # an unknown reference, or a declaration refusing it
            raise usage(f"loading the entry points (DF_ENTRY_POINTS) failed: {error}") from None
        passwords = {role: os.environ[PASSWORD_VARIABLE.format(role.upper())] for role in SERVICES}
        typer.echo(
            json.dumps(
                definitions(
                    permissions_for(settings.topology, declared),
                    user_names(settings.namespace, user_prefix),
                    passwords,
                    vhost or vhost_of(settings.amqp_url),
                ),
                indent=2,
            )
        )
        return EXIT_OK

    run(work)
