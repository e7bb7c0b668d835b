"""Readiness: whether a service can do its work now, check by check (what ``/readyz`` says).

A service evaluates its checks every second in its own event loop (``ReadinessMonitor``)
rather than when asked: the observability port answers from a thread of its own
(``services.common.observability_port``) without reaching into the loop, and a loop too busy
or stuck to evaluate them shows as not ready, its last evaluation growing old. A process
under the orchestrator's supervisor (ADR 15) also writes each evaluation to a small file in
the service's metrics directory, and the supervisor's ``/readyz`` is ready only if every
process's latest file is (``gather_reports``, ADR 30).

The standard library and structlog only: the supervisor imports this and must stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

OK = "ok"
CHECK_INTERVAL_SECONDS = 1.0
"""How often a service evaluates its checks: a lost broker shows within about this long."""
CHECK_TIMEOUT_SECONDS = 2.0
"""The longest one check may take (a query, a channel) before it counts as failed."""
STALE_AFTER_SECONDS = 5.0
"""An evaluation older than this says nothing any more: the process is not ready."""

Check = Callable[[], Awaitable[object]]
"""A readiness check: completes when the dependency is usable, raises what is wrong if not."""


class NotReadyError(Exception):
    """What a check raises for a condition that is not an error of a library (no consumer,
    no connection): its text is the check's answer."""


@dataclass(frozen=True)
class Readiness:
    """The answer of ``/readyz``: each check's ``"ok"`` or what is wrong.

    Attributes:
        checks: check name (``database``, ``broker``, ``consumers``, ``service``) → ``"ok"``
            or what is wrong.
        processes: under a supervisor, each process's own checks, by process index.
    """

    checks: Mapping[str, str]
    processes: Mapping[str, Mapping[str, str]] | None = field(default=None)

    @classmethod
    def not_ready(cls, reason: str) -> Readiness:
        """Not ready for a reason of the whole service (starting, stopping, stuck)."""
        return cls({"service": reason})

    @property
    def ready(self) -> bool:
        return bool(self.checks) and all(result == OK for result in self.checks.values())

    def body(self) -> dict[str, object]:
        """The JSON body, shaped like the client service's ``/readyz``."""
        body: dict[str, object] = {
            "status": "ready" if self.ready else "not ready",
            "checks": dict(self.checks),
        }
        if self.processes is not None:
            body["processes"] = {index: dict(c) for index, c in self.processes.items()}
        return body


class ReadinessMonitor:
    """Evaluates a service's checks every ``interval`` seconds and keeps the latest answer,
    for the observability port (``latest``) and, under a supervisor, in ``report_path``."""

    def __init__(
        self,
        report_path: Path | None = None,
        *,
        interval: float = CHECK_INTERVAL_SECONDS,
        timeout: float = CHECK_TIMEOUT_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
    ) -> None:
        self._report_path = report_path
        self._interval = interval
        self._timeout = timeout
        self._stale_after = stale_after
        # One tuple, replaced whole: the port's thread reads it without a lock.
        self._latest: tuple[float, Readiness] | None = None

    def latest(self) -> Readiness:
        """The last evaluation, or why there is none worth giving (thread-safe)."""
        latest = self._latest
        if latest is None:
            return Readiness.not_ready("starting")
        at, readiness = latest
        age = time.monotonic() - at
        if age > self._stale_after:
            return Readiness.not_ready(f"no readiness evaluated for {age:.0f} s (a busy loop?)")
        return readiness

    async def run(self, checks: Mapping[str, Check], stopping: asyncio.Event) -> None:
        """Evaluate ``checks`` until ``stopping`` is set; then say so (a stopping service is
        not ready)."""
        try:
            while not stopping.is_set():
                self._publish(await self.evaluate(checks))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._interval)
        finally:
            self._publish(Readiness.not_ready("stopping"))

    async def evaluate(self, checks: Mapping[str, Check]) -> Readiness:
        """Run every check at once, each within the timeout."""
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), self._timeout) for check in checks.values()),
            return_exceptions=True,
        )
        return Readiness(
            {name: _answer(result) for name, result in zip(checks, results, strict=True)}
        )

    def _publish(self, readiness: Readiness) -> None:
        previous = self._latest
        self._latest = (time.monotonic(), readiness)
        # A line when it changes, not every second: the log says when and why.
        if previous is None or previous[1].ready != readiness.ready:
            if readiness.ready:
                log.info("readiness.ready")
            elif readiness.checks == {"service": "stopping"}:
                log.info("readiness.stopping")
            else:
                log.warning("readiness.not_ready", checks=dict(readiness.checks))
        if self._report_path is not None:
            write_report(self._report_path, readiness)


def _answer(result: object) -> str:
    if not isinstance(result, BaseException):
        return OK
    if isinstance(result, TimeoutError):
        return "no answer within the check's time-out"
    return str(result) or repr(result)


def report_path(directory: Path, index: int) -> Path:
    """Where the process ``index`` of a supervised service writes its readiness."""
    return directory / f"ready-{index}.json"


def write_report(path: Path, readiness: Readiness) -> None:
    """Replace ``path`` with ``readiness`` at once: a reader sees the old file or the new."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps({"at": time.time(), "checks": dict(readiness.checks)}))
    os.replace(partial, path)


def gather_reports(paths: Sequence[Path], *, stale_after: float = STALE_AFTER_SECONDS) -> Readiness:
    """The readiness of a supervised service: each check ``"ok"`` only if it is in every
    process's report, else each failing process's answer; a process that has not reported
    yet, or not lately, is not ready."""
    processes = {str(index): _read_report(path, stale_after) for index, path in enumerate(paths)}
    merged: dict[str, list[str]] = {}
    for index, checks in processes.items():
        for name, result in checks.items():
            problems = merged.setdefault(name, [])
            if result != OK:
                problems.append(f"process {index}: {result}")
    checks = {name: "; ".join(problems) or OK for name, problems in merged.items()}
    return Readiness(checks, processes)


def _read_report(path: Path, stale_after: float) -> Mapping[str, str]:
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        return {"service": "starting"}
    except (OSError, ValueError) as error:
        return {"service": f"unreadable readiness report: {error}"}
    age = time.time() - float(report["at"])
    if age > stale_after:
        return {"service": f"no readiness report for {age:.0f} s"}
    return {str(name): str(result) for name, result in report["checks"].items()}
