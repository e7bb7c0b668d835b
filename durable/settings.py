"""Settings shared by every service, read from ``DF_*`` environment variables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_VALUE_BYTES, Limits
from contracts.topology import DEFAULT_DELIVERY_LIMIT, DEFAULT_PARTITIONS, Topology
from durable.broker_nodes import node_urls
from durable.redaction import mask_url
from durable.store.instances import ExistingInstancePolicy

MAX_QUORUM_GROUP_SIZE = 99
"""More replicas than any cluster this runs on would have (Raft's writes cost each one)."""


class CommonSettings(BaseSettings):
    """Where the database and broker are, how the topology is named, how to log.

    Attributes:
        database_url: Postgres DSN of the event store; several hosts (``h1:5432,h2:5432``)
            with ``target_session_attrs=read-write`` for a primary and its standbys, each
            tried in turn for 5 s (``durable.store.hosts``).
        database_timeout_seconds: the longest one database call of a service may take; past
            it the call fails as if the connection were lost, and the connection is dropped.
            A server that stops answering (a frozen host) would otherwise hold the call, and
            the connection, forever.
        amqp_url: RabbitMQ URL, or several comma-separated, the nodes of one cluster
            (``durable.broker_nodes``: a connection tries them in turn from a random one);
            ``?heartbeat=N`` on a URL sets the AMQP heartbeat (default 10 s,
            ``durable.broker_nodes.DEFAULT_HEARTBEAT_SECONDS``), which bounds how long a process
            that stopped without closing its connection keeps its deliveries.
        quorum_group_size: how many nodes each quorum queue the deployment declares is
            created on (``x-quorum-initial-group-size``); 0 leaves it to the broker (ADR 28).
        namespace: prefix of every exchange and queue (several deployments can share a broker).
        partitions: orchestrator partitions; every service of a deployment must agree.
        function_modules: comma-separated importable modules holding ``FunctionApp``s.
        entry_points: the broker entry points the client service consumes
            (``durable.entry_points``), comma-separated ``module`` or ``module:name``
            references; unset, those the function modules define (``entry_points``); empty,
            none. The operator tool finds the entry points' dead-letter queues from it.
        log_format: ``console`` for people, ``json`` for log pipelines.
        start_existing: what ``DurableClient.start_new`` does by default when the instance id
            it is given is in use: ``error`` refuses it whatever the instance's state;
            ``replace_ended`` replaces an instance that has ended and refuses one that has
            not. A call can choose otherwise (``if_exists=``); the HTTP API always follows
            Durable Functions (``replace_ended``) and a broker entry point's start always
            refuses (a re-sent message starts nothing).
        max_json_depth: how deeply objects and arrays may nest in one value (an input, a
            result, event data, a custom status); every service of a deployment must agree.
        max_value_bytes: how large one value's compact JSON text may be, in bytes.
        migrate_on_start: a service applies the database migrations when it starts (as the
            owner role); otherwise it only checks that the schema is current and refuses to
            start, naming the command to run, when it is not (ADR 36).
    """

    model_config = SettingsConfigDict(
        env_prefix="DF_",
        extra="ignore",
        # A refused URL or key must not end up in a log whole: the message names what is wrong.
        hide_input_in_errors=True,
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/durable"
    database_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    namespace: str = "df"
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=1024)
    delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1)
    quorum_group_size: int = Field(default=0, ge=0, le=MAX_QUORUM_GROUP_SIZE)
    function_modules: str = "workflows.samples,workflows.patterns,workflows.approval"
    entry_points: str | None = None
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    start_existing: ExistingInstancePolicy = ExistingInstancePolicy.ERROR
    max_json_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=150)
    max_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, ge=1024, le=64 * 1024 * 1024)
    migrate_on_start: bool = False

    @field_validator("amqp_url")
    @classmethod
    def _node_urls(cls, value: str) -> str:
        node_urls(value)  # raises ValueError, naming the item that is wrong
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The URLs' userinfo holds passwords; a repr may end up anywhere (ADR 22).
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name in ("database_url", "amqp_url") else value

    @property
    def topology(self) -> Topology:
        return Topology(
            namespace=self.namespace,
            partitions=self.partitions,
            delivery_limit=self.delivery_limit,
            quorum_group_size=self.quorum_group_size,
        )

    @property
    def limits(self) -> Limits:
        """What every value must fit (``contracts.limits``); a service applies them with
        ``contracts.limits.configure`` when it starts."""
        return Limits(max_depth=self.max_json_depth, max_value_bytes=self.max_value_bytes)

    @property
    def modules(self) -> list[str]:
        return [name.strip() for name in self.function_modules.split(",") if name.strip()]
