"""Orchestration versions: whether this process runs an instance, by the version it started with.

Durable Functions' versioning: each instance records the app version it started under
(``ExecutionStarted.version``, ``context.version``); a process compares it with its own
(``DF_APP_VERSION``) by a match strategy, and an instance it may not run is left waiting
for a process that may, or failed, by a failure strategy. Decided here, without I/O, so the
orchestrator service and the replay check decide alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from durable.versioning import compare_versions


class VersionMatch(enum.StrEnum):
    """Which instances a process runs (Durable Functions' ``versionMatchStrategy``)."""

    NONE = "none"
    """Every instance, whatever its version."""
    STRICT = "strict"
    """Only instances of exactly the process's version."""
    CURRENT_OR_OLDER = "current-or-older"
    """Instances of the process's version or an older one (code that kept the old paths)."""


class VersionFailure(enum.StrEnum):
    """What happens to an instance a process may not run (``versionFailureStrategy``)."""

    REJECT = "reject"
    """Leave it waiting: its messages come back later, for a process that may run it."""
    FAIL = "fail"
    """Fail it, with a ``VersionMismatch`` failure naming both versions."""


class Verdict(enum.Enum):
    RUN = "run"
    WAIT = "wait"
    FAIL = "fail"


@dataclass(frozen=True)
class VersionPolicy:
    """A process's version and strategies.

    Attributes:
        version: what new instances started here record (``None``: none, and nothing to
            compare with: every instance runs).
        match: which instances this process runs.
        failure: what happens to the others.
    """

    version: str | None = None
    match: VersionMatch = VersionMatch.NONE
    failure: VersionFailure = VersionFailure.REJECT

    def verdict(self, instance_version: str | None) -> Verdict:
        """Run an instance that started under ``instance_version``, leave it waiting, or fail it."""
        if self.accepts(instance_version):
            return Verdict.RUN
        return Verdict.WAIT if self.failure is VersionFailure.REJECT else Verdict.FAIL

    def accepts(self, instance_version: str | None) -> bool:
        if self.match is VersionMatch.NONE or self.version is None:
            return True
        order = compare_versions(instance_version, self.version)
        if self.match is VersionMatch.STRICT:
            return order == 0
        return order <= 0

    def mismatch(self, instance_version: str | None) -> str:
        """Why ``instance_version`` is not run here, for a failure or a log line."""
        shown = repr(instance_version) if instance_version else "no version"
        wanted = "exactly" if self.match is VersionMatch.STRICT else "at most"
        return (
            f"the instance started under {shown}, and this process (DF_APP_VERSION="
            f"{self.version!r}, DF_VERSION_MATCH={self.match.value}) runs {wanted} "
            f"version {self.version!r}"
        )
