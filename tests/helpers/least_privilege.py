"""A deployment's least-privilege identities made for one test, and removed after it: a
database owned by an owner role that migrates it, a runtime role granted what the services
need, and the broker users ``durable-ops broker-definitions`` defines for the namespace.

Roles and broker users are the servers', not a database's or a virtual host's, so their names
are unique per test; nothing that existed before is changed (the broker users are added with
``rabbitmqctl import_definitions`` of users and permissions only, and deleted by name).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from contracts.permissions import SERVICES, Permissions
from services.common.migrate import apply_migrations, grant_runtime_role
from services.operations.broker_definitions import (
    PASSWORD_VARIABLE,
    definitions,
    user_names,
    user_password_variable,
)
from tests.helpers import broker_users
from tests.helpers.broker_users import BrokerUser
from tests.helpers.credentials import Credentials


@dataclass(frozen=True)
class DatabaseRoles:
    database: str
    owner: Credentials
    runtime: Credentials


@asynccontextmanager
async def database_roles(admin_url: str, *, grant: bool = True) -> AsyncIterator[DatabaseRoles]:
    """A new database owned by a new owner role, migrated by it; a runtime role granted the
    services' rights unless ``grant`` is false (their URLs: ``database_url``)."""
    tag = secrets.token_hex(4)
    roles = DatabaseRoles(
        f"df_lp_{tag}",
        Credentials(f"df_lp_owner_{tag}", secrets.token_hex(16)),
        Credentials(f"df_lp_runtime_{tag}", secrets.token_hex(16)),
    )
    admin = await asyncpg.connect(admin_url)
    try:
        for role in (roles.owner, roles.runtime):
            await admin.execute(f"CREATE ROLE \"{role.user}\" LOGIN PASSWORD '{role.password}'")
        await admin.execute(f'CREATE DATABASE "{roles.database}" OWNER "{roles.owner.user}"')
    finally:
        await admin.close()
    try:
        owner = await asyncpg.connect(database_url(admin_url, roles, roles.owner))
        try:
            await apply_migrations(owner)
            if grant:
                await grant_runtime_role(owner, roles.runtime.user)
        finally:
            await owner.close()
        yield roles
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{roles.database}" WITH (FORCE)')
            for role in (roles.owner, roles.runtime):
                await admin.execute(f'DROP ROLE IF EXISTS "{role.user}"')
        finally:
            await admin.close()


def database_url(admin_url: str, roles: DatabaseRoles, role: Credentials) -> str:
    """``admin_url``'s server, ``roles``' database, as ``role``."""
    base, _, _ = admin_url.rpartition("/")
    return role.in_url(f"{base}/{roles.database}")


@asynccontextmanager
async def service_broker_users(
    permissions: dict[str, Permissions],
    namespace: str,
    amqp_url: str,
    rabbitmqctl: Sequence[str],
) -> AsyncIterator[dict[str, BrokerUser]]:
    """The broker users of ``durable-ops broker-definitions`` for ``namespace`` with
    ``permissions``, imported, able to log in; deleted at the end."""
    names = user_names(namespace)
    users = {role: BrokerUser.new(names[role]) for role in permissions}
    body = definitions(
        permissions, names, {role: user.password for role, user in users.items()}, "/"
    )
    await broker_users.import_definitions(
        json.dumps(body).encode(), list(users.values()), amqp_url, rabbitmqctl
    )
    try:
        yield users
    finally:
        await broker_users.delete(users.values(), rabbitmqctl)


@asynccontextmanager
async def defined_broker_users(
    env: Mapping[str, str],
    people: Iterable[str],
    amqp_url: str,
    rabbitmqctl: Sequence[str],
) -> AsyncIterator[dict[str, BrokerUser]]:
    """The broker users ``durable-ops broker-definitions`` defines for the deployment whose
    settings are ``env``, as an operator runs it: the services', the operator's, the
    submitter's and those of ``people`` (approvers' and gateways' users), with passwords
    made here; imported, able to log in, by name; deleted at the end."""
    namespace = env["DF_NAMESPACE"]
    roles = (*SERVICES, "submitter")
    passwords = {
        name: (PASSWORD_VARIABLE.format(role.upper()), secrets.token_urlsafe(18))
        for role, name in user_names(namespace, roles=roles).items()
    }
    passwords |= {
        name: (user_password_variable(name), secrets.token_urlsafe(18)) for name in people
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DF_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "services.operations", "broker-definitions", "--vhost", "/"),
        env={**inherited, **env, **dict(passwords.values())},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    body = json.loads(stdout)
    users = {
        user["name"]: BrokerUser(user["name"], passwords[user["name"]][1]) for user in body["users"]
    }
    try:  # deleted even when they never could log in
        await broker_users.import_definitions(stdout, list(users.values()), amqp_url, rabbitmqctl)
        yield users
    finally:
        await broker_users.delete(users.values(), rabbitmqctl)
