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
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

import structlog

log = structlog.get_logger("services.orchestrator")

PROCESS_INDEX_VARIABLE = "DF_ORCHESTRATOR_PROCESS_INDEX"
SUPERVISOR_VARIABLE = "DF_ORCHESTRATOR_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def supervise(processes: int) -> int:
    """Run ``processes`` copies of the service until a signal stops them or one exits; the
    exit status: 0 when stopped by a signal, else that of the copy that ended first."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "services.orchestrator"],
            env={
                **os.environ,
                PROCESS_INDEX_VARIABLE: str(index),
                SUPERVISOR_VARIABLE: str(os.getpid()),
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
