"""One RabbitMQ node of a test's cluster (``tests.helpers.rabbit_cluster``): its name, ports,
files and directories, and its server process, started from the machine's binaries as the
``rabbitmq`` user, in the node's network namespace when it has one, and killed by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.helpers.netns import Member

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RabbitNode:
    """One node: its name, ports, directory and (while it runs) its process."""

    index: int
    name: str
    amqp_port: int
    dist_port: int
    directory: Path
    home: Path
    host: str = "127.0.0.1"
    member: Member | None = None  # its network namespace, in a cluster that has them
    config: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _output: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.amqp_port}/"

    @property
    def pid_file(self) -> Path:
        return self.directory / "beam.pid"

    @property
    def log(self) -> Path:
        return self.directory / "server.out"

    @property
    def env_file(self) -> Path:
        return self.directory / "rabbitmq-env.conf"

    def exec_prefix(self) -> list[str]:
        """What runs a program where the node runs: in its namespace, if it has one."""
        return [] if self.member is None else self.member.exec_prefix()

    def cli_env(self) -> dict[str, str]:
        """The environment of the node's scripts and of ``rabbitmqctl`` for it."""
        env = {"HOME": str(self.home), "RABBITMQ_CONF_ENV_FILE": str(self.env_file)}
        if self.member is not None:
            env["RABBITMQ_USE_LONGNAME"] = "true"
        return env

    def env(self) -> dict[str, str]:
        return self.cli_env() | {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "data"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
        }

    def write_files(self) -> None:
        for sub in ("data", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        lines = [f"listeners.tcp.default = {self.host}:{self.amqp_port}", *self.config]
        (self.directory / "rabbitmq.conf").write_text("".join(f"{line}\n" for line in lines))
        # The machine's env file sets the machine node's name; ours keeps the node's address.
        interface = "{" + self.host.replace(".", ",") + "}"
        self.env_file.write_text(
            f'export ERL_FLAGS="-kernel inet_dist_use_interface {interface}"\n'
        )
        (self.directory / "enabled_plugins").write_text("[].\n")

    def launch(self) -> None:
        """Start the server in the background (``wait_running`` waits for it)."""
        self.pid_file.unlink(missing_ok=True)
        self._output = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                *self.exec_prefix(),
                "runuser",
                "-u",
                "rabbitmq",
                "--",
                "env",
                *(f"{key}={value}" for key, value in self.env().items()),
                str(RABBITMQ_BIN / "rabbitmq-server"),
            ],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def vm_pid(self) -> int | None:
        """The pid of the node's Erlang VM, while it runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def kill(self) -> None:
        """kill -9 of the Erlang VM: the node is gone at once, its sockets with it."""
        pid = self.vm_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        self._reap()

    def _reap(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
