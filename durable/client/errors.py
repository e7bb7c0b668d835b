"""What the client refuses, with the instance and its state as attributes."""

from __future__ import annotations

from contracts import OrchestrationStatus


class InstanceNotFoundError(LookupError):
    """No instance has this id."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no instance {instance_id!r}")
        self.instance_id = instance_id


class InstanceEndedError(Exception):
    """The instance has ended (Completed, Failed or Terminated) and takes no more events."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(f"instance {instance_id!r} has ended ({status.value})")
        self.instance_id = instance_id
        self.status = status


class InstanceRunningError(Exception):
    """The operation needs an ended instance, and this one has not ended."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(
            f"instance {instance_id!r} is {status.value}; terminate it or wait for it to end"
        )
        self.instance_id = instance_id
        self.status = status


class InstanceExistsError(Exception):
    """``start_new`` named an instance id that is already in use (and the start policy
    does not allow replacing it, or keeping it: it runs another orchestrator, ``name``)."""

    def __init__(
        self, instance_id: str, status: OrchestrationStatus, name: str | None = None
    ) -> None:
        runs = f" and runs {name!r}" if name is not None else ""
        super().__init__(f"instance {instance_id!r} already exists{runs} and is {status.value}")
        self.instance_id = instance_id
        self.status = status
        self.name = name


class InstanceNotFailedError(Exception):
    """Rewind needs a Failed instance, and this one is not."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(
            f"only a Failed instance can be rewound; {instance_id!r} is {status.value}"
        )
        self.instance_id = instance_id
        self.status = status


class StartOutcomeUnknownError(Exception):
    """The connection to the database was lost while a start was being written, and it could
    not be found out in time whether the instance was created: it may exist. Retrying the
    start of this id with ``ExistingInstancePolicy.USE_EXISTING`` is safe either way."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            f"The event store became unavailable while instance {instance_id!r} was being "
            "created, and whether it was cannot be known yet. Retry later with the same "
            "instance id and ifExists=useExisting, or read its status."
        )
        self.instance_id = instance_id
