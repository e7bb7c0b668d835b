"""A RabbitMQ cluster of three nodes on 127.0.0.1, built by a test from the installed binaries.

For the high-availability tests (issue 17): ``RabbitCluster`` starts nodes with the machine's
``rabbitmq-server`` (``/usr/lib/rabbitmq/bin``, the scripts ``/usr/sbin/rabbitmq-server``
wraps), each with a node name of its own (unique per run), an AMQP port and an Erlang
distribution port (free loopback ports), its own ``RABBITMQ_CONFIG_FILE`` (the machine's
``/etc/rabbitmq/rabbitmq.conf`` pins port 5672), its own env file and an empty plugin list
(no management listener to clash on), and data and log directories in a temporary directory
owned by the ``rabbitmq`` user, who runs the nodes (``runuser``). They share one Erlang
cookie, written to that directory, which is their ``HOME``; the machine's node (on 5672,
with the machine's cookie) is not touched, and epmd (4369) is shared with it.

The nodes start together, then every other node joins the first (``rabbitmqctl
join_cluster``): about ten seconds for three on the two-core test machine. The test can
kill a node (kill -9 of its Erlang VM, by the pid in its pid file), start it again (it
rejoins with its data), and ask which node leads a quorum queue. Everything is stopped and
removed at the end, whether the test passed or not. Usage::

    async with RabbitCluster.started(nodes=3) as cluster:
        connection = await connect(cluster.amqp_url, "test")   # the comma-separated list
        leader = await cluster.node_leading_most(queue_names)
        cluster.kill(leader)
        ...
        await cluster.start(leader)

RabbitMQ 3.10 gives a quorum queue declared without ``x-quorum-initial-group-size`` a
replica on ``quorum_cluster_size`` nodes (3), so on this cluster every queue is on all three.

**Partitions.** ``RabbitCluster.started(nodes=3, namespaces=True)`` runs each node in a network
namespace of its own (``tests/helpers/netns.py``: a bridge on the host, a veth pair per node, a
random /28 in 10.0.0.0/8), so that ``partition(node)`` can cut one node off from the others and
from the host's processes, and ``heal(node)`` join it again. The nodes of such a cluster:

- use Erlang long names with the node's address as the host part
  (``dfha<run>n1@10.a.b.3``, ``RABBITMQ_USE_LONGNAME=true``): a short name such as
  ``@localhost`` resolves to each namespace's own loopback, so no node could reach another.
  Every node of a cluster must use the same naming mode, and the CLI too.
- each register with the epmd of their own namespace (started by the network, stopped by its
  pid): the machine's epmd listens on 127.0.0.1 of the host only, which no namespace reaches.
- listen for AMQP on 5672 and for the distribution on 25672 of their own address; the
  machine's node (127.0.0.1 of the host) is not in their namespaces, so nothing clashes.
- are reached by ``rabbitmqctl`` run inside the node's namespace (``ip netns exec``): there
  it finds the node through the namespace's epmd. Run on the host, its own long-named node
  (``rabbitmqcli-…@vm.localdomain``) failed to start its distribution (``nodistribution``).

``config`` adds lines to every node's ``rabbitmq.conf`` (the partition test sets
``net_ticktime`` and ``cluster_partition_handling`` there). Cutting a node's veth loses its
packets in both directions without resetting a connection, as a failed switch port would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from tests.helpers.netns import Member, NamespaceNetwork
from tests.helpers.rabbit_node import RABBITMQ_BIN, RabbitNode, free_port

HOST = "localhost"  # short node names, as the machine's own node (rabbit@localhost)
START_TIMEOUT_SECONDS = 60
# One line per quorum queue of the default vhost: its name, leader and members.
QUORUM_QUEUES = (
    '[io:format("~ts ~ts~ts~n", [element(4, amqqueue:get_name(Q)), element(2, amqqueue:get_pid(Q)),'
    ' [[" ", atom_to_list(N)] || N <- maps:get(nodes, amqqueue:get_type_state(Q))]])'
    " || Q <- rabbit_amqqueue:list(), amqqueue:get_type(Q) =:= rabbit_quorum_queue], ok."
)


class RabbitCluster:
    """Nodes clustered on 127.0.0.1 (see the module's docstring)."""

    def __init__(
        self,
        root: Path,
        nodes: int,
        network: NamespaceNetwork | None = None,
        config: Iterable[str] = (),
    ) -> None:
        self.root = root
        self.network = network
        self.partitioned: set[int] = set()
        run = uuid.uuid4().hex[:6]
        self.nodes = [
            self._node(run, index, network.add() if network else None, tuple(config))
            for index in range(nodes)
        ]

    def _node(
        self, run: str, index: int, member: Member | None, config: tuple[str, ...]
    ) -> RabbitNode:
        directory = self.root / f"node{index}"
        if member is None:
            return RabbitNode(
                index=index,
                name=f"dfha{run}n{index}@{HOST}",
                amqp_port=free_port(),
                dist_port=free_port(),
                directory=directory,
                home=self.root,
                config=config,
            )
        # Alone in its namespace, the node has the usual ports to itself. The host's
        # processes connect from the bridge's address, not loopback: guest must be let in.
        return RabbitNode(
            index=index,
            name=f"dfha{run}n{index}@{member.address}",
            amqp_port=5672,
            dist_port=25672,
            directory=directory,
            home=self.root,
            host=member.address,
            member=member,
            config=("loopback_users.guest = false", *config),
        )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def amqp_url(self) -> str:
        """Every node's URL, comma-separated: ``DF_AMQP_URL`` for the cluster."""
        return ",".join(self.urls)

    def node(self, name_or_index: RabbitNode | str | int) -> RabbitNode:
        """The node named so, or of that index (a node stands for itself)."""
        if isinstance(name_or_index, RabbitNode):
            return name_or_index
        for node in self.nodes:
            if name_or_index in (node.index, node.name):
                return node
        raise KeyError(name_or_index)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, nodes: int = 3, *, namespaces: bool = False, config: Iterable[str] = ()
    ) -> AsyncIterator[RabbitCluster]:
        """Start ``nodes`` nodes and cluster them; stop and remove them all at the end.

        Args:
            nodes: how many.
            namespaces: run each node in a network namespace of its own, so that the test can
                ``partition`` it (see the module's docstring); else all on 127.0.0.1.
            config: lines added to every node's ``rabbitmq.conf``.
        """
        with cls._directory() as root:
            network = NamespaceNetwork() if namespaces else None
            try:
                cluster = cls(root, nodes, network, config)
                try:
                    await cluster._build()
                    yield cluster
                finally:
                    await cluster._remove()
            finally:
                if network is not None:
                    network.remove()

    @staticmethod
    @contextlib.contextmanager
    def _directory() -> Iterator[Path]:
        root = Path(tempfile.mkdtemp(prefix="df-rabbit-cluster-"))
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)

    async def _build(self) -> None:
        started = time.monotonic()
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        for node in self.nodes:
            node.write_files()
        for path in [self.root, *self.root.rglob("*")]:
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.root.chmod(0o755)
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            await self._wait_running(node)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            await self.ctl(node, "stop_app")
            await self.ctl(node, "join_cluster", seed.name)
            await self.ctl(node, "start_app")
        self.build_seconds = time.monotonic() - started

    async def start(self, node: RabbitNode | int) -> None:
        """Start a node again (after ``kill``); it rejoins the cluster with its data."""
        target = self.node(node)
        target.launch()
        await self._wait_running(target)

    def kill(self, node: RabbitNode | int) -> None:
        """kill -9 of the node's Erlang VM, by its pid only."""
        self.node(node).kill()

    def partition(self, node: RabbitNode | int) -> None:
        """Cut the node off the network: from the other nodes and from the host's processes."""
        index = self.node(node).index
        self._network().cut(index)
        self.partitioned.add(index)

    def heal(self, node: RabbitNode | int) -> None:
        """Join a partitioned node to the network again."""
        index = self.node(node).index
        self._network().restore(index)
        self.partitioned.discard(index)

    def _network(self) -> NamespaceNetwork:
        if self.network is None:
            raise RuntimeError("a partition needs a cluster started with namespaces=True")
        return self.network

    def running(self) -> list[RabbitNode]:
        return [node for node in self.nodes if node.vm_pid() is not None]

    def observer(self) -> RabbitNode:
        """A running node that is not partitioned: the one whose view the queries report."""
        return next(node for node in self.running() if node.index not in self.partitioned)

    async def leaders(self, queues: Iterable[str]) -> dict[str, str]:
        """The node leading each of ``queues`` (by node name), as a running node sees it."""
        wanted = set(queues)
        rows = await self._quorum_queues()
        return {name: members[0] for name, members in rows.items() if name in wanted}

    async def leader_of(self, queue: str) -> RabbitNode:
        return self.node((await self.leaders([queue]))[queue])

    async def node_leading_most(self, queues: Iterable[str]) -> RabbitNode:
        """The node that leads more of ``queues`` than any other."""
        counts = Counter((await self.leaders(queues)).values())
        return self.node(counts.most_common(1)[0][0])

    async def led_by(self, node: RabbitNode) -> list[str]:
        """The quorum queues whose leader is ``node``, as ``observer()`` records them: after
        ``node`` is lost, those that have not elected a new leader yet."""
        rows = await self._quorum_queues()
        return sorted(name for name, members in rows.items() if members[0] == node.name)

    async def members_of(self, queue: str) -> list[str]:
        """The nodes (names) holding a replica of the quorum queue ``queue``."""
        return (await self._quorum_queues())[queue][1:]

    async def cluster_nodes(self, seen_by: RabbitNode | None = None) -> list[str]:
        """The running nodes of the cluster, as ``seen_by`` (else ``observer()``) sees it."""
        status = json.loads(
            await self.ctl(seen_by or self.observer(), "cluster_status", "--formatter", "json")
        )
        return sorted(status["running_nodes"])

    async def app_running(self, node: RabbitNode) -> bool:
        """Whether the node's broker runs, as the node itself says (false while it is paused)."""
        return (await self.ctl(node, "eval", "rabbit:is_running().")).strip() == "true"

    async def ctl(self, node: RabbitNode, *arguments: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> ...`` as the nodes' user, with their cookie."""
        process = await asyncio.create_subprocess_exec(
            *node.exec_prefix(),
            "runuser",
            "-u",
            "rabbitmq",
            "--",
            "env",
            *(f"{key}={value}" for key, value in node.cli_env().items()),
            str(RABBITMQ_BIN / "rabbitmqctl"),
            "-n",
            node.name,
            "-q",
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(arguments)} failed: "
                f"{err.decode(errors='replace') or out.decode(errors='replace')}"
            )
        return out.decode()

    async def _quorum_queues(self) -> dict[str, list[str]]:
        """Each quorum queue's leader, then its members, as ``observer()`` records them.

        Asked with ``eval`` rather than ``list_queues``, which timed out (60 s) on a cluster
        of namespaces: as we read it, every node sends its rows to the CLI's own node, whose
        host name (``vm``) is loopback in every namespace, so only the CLI's own node answers.
        """
        out = await self.ctl(self.observer(), "eval", QUORUM_QUEUES)
        rows = (line.split() for line in out.splitlines())
        return {row[0]: row[1:] for row in rows if len(row) > 2}

    async def _wait_running(self, node: RabbitNode) -> None:
        # `rabbitmqctl wait` returns once the pid file is there and the broker has booted.
        try:
            await self.ctl(
                node, "wait", str(node.pid_file), "--timeout", str(START_TIMEOUT_SECONDS)
            )
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{node.name} did not start: {error}\n{node.log_tail()}") from None

    async def _remove(self) -> None:
        for index in list(self.partitioned):
            self.heal(index)
        for node in self.nodes:
            if node.vm_pid() is None:
                node._reap(timeout=5)
                continue
            try:
                await self.ctl(node, "stop", timeout=30)
            except (RuntimeError, TimeoutError):
                node.kill()
            node._reap()
