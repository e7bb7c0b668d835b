"""A Postgres primary with a synchronous standby, built by a test from the installed binaries.

For the high-availability tests (issue 17): ``PostgresPair`` makes a primary with ``initdb``
and a streaming standby with ``pg_basebackup``, each on a free loopback port in a temporary
directory of its own, with ``synchronous_standby_names`` so that a commit is acknowledged only
once the standby has it. The test kills the primary and promotes the standby itself, as
Patroni or CloudNativePG would. Nothing of the machine's own Postgres is touched; everything
is removed at the end.

``initdb`` and ``pg_ctl`` refuse to run as root, so they run as the ``postgres`` user
(``runuser``), who owns the temporary directory. Usage::

    async with PostgresPair.started() as pair:
        pool = await create_pool(pair.dsn)        # both hosts, target_session_attrs=read-write
        ...
        pair.kill_primary()
        pair.promote_standby()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

BINARIES = Path("/usr/lib/postgresql/15/bin")
STANDBY_NAME = "standby"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*command: str) -> None:
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")


def _parent_of(stat: Path) -> int | None:
    try:
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
        return int(stat.read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Node:
    """One server: its data directory, port and log."""

    directory: Path
    port: int
    frozen: bool = False

    @property
    def log(self) -> Path:
        return self.directory.with_suffix(".log")

    def start(self) -> None:
        try:
            _as_postgres(
                str(BINARIES / "pg_ctl"),
                *("-D", str(self.directory), "-l", str(self.log), "-w", "start"),
            )
        except RuntimeError as error:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{error}\n{tail}") from None

    def stop(self) -> None:
        _as_postgres(str(BINARIES / "pg_ctl"), "-D", str(self.directory), "-m", "immediate", "stop")

    def kill(self) -> None:
        """kill -9 of the postmaster (its backends end when they find it gone)."""
        pid = int((self.directory / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its backends: the host answers TCP (its kernel still
        runs) but no server process does, as with a frozen VM whose sockets stay open."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def _processes(self) -> list[int]:
        postmaster = int((self.directory / "postmaster.pid").read_text().splitlines()[0])
        children = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_of(stat) == postmaster
        ]
        return [postmaster, *children]

    def running(self) -> bool:
        pid_file = self.directory / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            stat = Path(f"/proc/{int(pid_file.read_text().splitlines()[0])}/stat").read_text()
        except (OSError, ValueError):
            return False
        # A postmaster killed -9 stays a zombie until its parent (init) reaps it.
        return stat.rpartition(")")[2].split()[0] != "Z"


class PostgresPair:
    """A primary and a synchronous streaming standby (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.primary = Node(root / "primary", _free_port())
        self.standby = Node(root / "standby", _free_port())

    @property
    def dsn(self) -> str:
        """Both hosts; a connection goes to whichever accepts writes."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def node_dsn(self, node: Node) -> str:
        return f"postgresql://postgres@127.0.0.1:{node.port}/postgres"

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls) -> AsyncIterator[PostgresPair]:
        with cls._directory() as root:
            pair = cls(root)
            try:
                pair._build()
                yield pair
            finally:
                pair._remove()

    @staticmethod
    @contextlib.contextmanager
    def _directory() -> Iterator[Path]:
        root = Path(tempfile.mkdtemp(prefix="df-pg-pair-"))
        try:
            shutil.chown(root, "postgres")
            root.chmod(0o700)
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _build(self) -> None:
        primary, standby = self.primary, self.standby
        _as_postgres(
            str(BINARIES / "initdb"),
            "-D",
            str(primary.directory),
            "-U",
            "postgres",
            "--auth=trust",
            "-N",
        )
        with (primary.directory / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"port = {primary.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                # A commit is acknowledged once the standby has it.
                f"synchronous_standby_names = '{STANDBY_NAME}'\n"
                # Test data: a crash of the machine need not keep it.
                "fsync = off\n"
            )
        with (primary.directory / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        primary.start()
        self._copy_primary_to(standby)

    def _copy_primary_to(self, standby: Node) -> None:
        """Make ``standby`` a streaming copy of the primary, and start it."""
        _as_postgres(
            str(BINARIES / "pg_basebackup"),
            "-D",
            str(standby.directory),
            "-R",
            "-X",
            "stream",
            # At once: a spread checkpoint on a busy primary takes minutes.
            "--checkpoint=fast",
            "-d",
            f"host=127.0.0.1 port={self.primary.port} user=postgres "
            f"application_name={STANDBY_NAME}",
        )
        with (standby.directory / "postgresql.auto.conf").open("a") as conf:
            # The copy has the primary's settings: once promoted, with no standby of its own,
            # it must not wait for one (until ``rebuild_standby`` gives it one).
            conf.write(f"port = {standby.port}\nsynchronous_standby_names = ''\n")
        standby.start()

    def kill_primary(self) -> None:
        self.primary.kill()

    def promote_standby(self) -> None:
        _as_postgres(str(BINARIES / "pg_ctl"), "-D", str(self.standby.directory), "-w", "promote")

    def rebuild_standby(self) -> None:
        """After ``promote_standby``: the promoted server becomes the primary, and the old
        primary's place (its port) a new synchronous standby copied from it, as an operator
        rebuilds a failed node; so the pair can fail over again."""
        old = self.primary
        if old.frozen:
            old.thaw()
        if old.running():
            old.stop()
        self.primary, self.standby = self.standby, Node(old.directory, old.port)
        shutil.rmtree(old.directory)
        # A postmaster killed -9 leaves its socket's lock file, naming a pid that stays a
        # zombie until init reaps it, which the next server on the port takes for alive.
        for leftover in self.root.glob(f".s.PGSQL.{old.port}*"):
            leftover.unlink(missing_ok=True)
        self._copy_primary_to(self.standby)
        # Synchronous again once the standby streams: before, every commit would wait.
        _as_postgres(
            str(BINARIES / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-c",
            f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'",
            "-c",
            "SELECT pg_reload_conf()",
        )

    def _remove(self) -> None:
        for node in (self.standby, self.primary):
            if node.frozen:
                node.thaw()
            if node.running():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    node.stop()
