"""Several orchestrator processes in one service, on one host.

One process runs one event loop on one core, and under load the orchestrator's is the busiest
of the system (ADR 15). With ``DF_ORCHESTRATOR_PROCESSES`` above 1, ``python -m
services.orchestrator`` becomes a supervisor that starts that many copies of itself. Each
copy is a member of the deployment like any replica on another host, and holds leases on its
share of the partitions (``leases``, ADR 27), so each instance, its cache entry and its
batches live in exactly one process.

The service fails as a whole: when a copy exits on its own the supervisor stops the others
and exits with its status, for whatever runs the service to restart it; a copy whose
supervisor dies is killed by the kernel (Linux) or notices within a second and exits, so a
crash of the service is a crash of all of it.

The supervisor serves the service's observability port (ADR 30): the copies write their
metrics to a directory of its own (prometheus-client's multiprocess mode), which it reads at
each scrape, and their readiness to a file each in the same directory
(``services.common.readiness``); it is ready when every copy is.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import structlog
from prometheus_client.multiprocess import mark_process_dead

from services.common.observability_port import ObservabilityPort, multiprocess_metrics
from services.common.readiness import gather_reports, report_path

log = structlog.get_logger("services.orchestrator")

PROCESS_INDEX_VARIABLE = "DF_ORCHESTRATOR_PROCESS_INDEX"
SUPERVISOR_VARIABLE = "DF_ORCHESTRATOR_SUPERVISOR_PID"
METRICS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable: set, the library keeps its values in files there."""
PORT_SETTING = "DF_ORCHESTRATOR_OBSERVABILITY_PORT"
_PR_SET_PDEATHSIG = 1


def supervise(processes: int, port: tuple[str, int] | None = None) -> int:
    """Run ``processes`` copies of the service until a signal stops them or one exits, and
    serve their observability ``port`` (host, port) unless None; the exit status: 0 when
    stopped by a signal, else that of the copy that ended first.

    Raises:
        PortInUseError: ``port`` is taken; nothing was started.
    """
    with _metrics_directory() as directory:
        observability = None
        if port is not None:
            reports = [report_path(directory, index) for index in range(processes)]
            observability = ObservabilityPort(
                *port,
                readiness=lambda: gather_reports(reports),
                metrics=multiprocess_metrics(directory),
                setting=PORT_SETTING,
            )
            host, bound = observability.address
            log.info("observability.listening", host=host, port=bound)
            observability.start()
        try:
            return _run_copies(processes, directory)
        finally:
            if observability is not None:
                observability.close()


@contextlib.contextmanager
def _metrics_directory() -> Iterator[Path]:
    """A fresh, empty directory for this run's metrics and readiness files, removed after:
    values left by an earlier run would be summed into this one's."""
    directory = Path(tempfile.mkdtemp(prefix="df-orchestrator-metrics-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run_copies(processes: int, directory: Path) -> int:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "services.orchestrator"],
            env={
                **os.environ,
                PROCESS_INDEX_VARIABLE: str(index),
                SUPERVISOR_VARIABLE: str(os.getpid()),
                # Before the copy imports prometheus-client: it chooses its mode at import.
                METRICS_DIRECTORY_VARIABLE: str(directory),
            },
        )
        for index in range(processes)
    ]
    log.info("supervisor.started", processes=processes, pids=[c.pid for c in children])
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    status = 0
    while any(child.poll() is None for child in children):
        pid, code = os.wait()
        ended = next((c for c in children if c.pid == pid), None)
        if ended is None:
            continue
        ended.returncode = os.waitstatus_to_exitcode(code)
        # Its live gauges (``multiprocess_mode="live…"``) go; its counters stay in the sums.
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        if not stopping:
            log.error("supervisor.process_ended", pid=pid, status=ended.returncode)
            status = ended.returncode or 1
            forward(signal.SIGTERM, None)
    return status


def die_with_supervisor() -> None:
    """In a copy started by ``supervise``: end when the supervisor does."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if supervisor is None:
        return
    parent = int(supervisor)
    if _kill_me_with_my_parent() and os.getppid() == parent:
        return
    if os.getppid() != parent:  # the supervisor died before prctl took
        os._exit(1)

    def watch() -> None:  # no prctl here: look for the parent every second
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def _kill_me_with_my_parent() -> bool:
    """Linux's PR_SET_PDEATHSIG: the kernel kills this process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0)
    except (OSError, AttributeError):
        return False
