"""Runtime status of an orchestration instance, spelled as Durable Functions spells it."""

from enum import StrEnum


class OrchestrationStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        """True once the instance has ended and accepts no more work."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED}
)
