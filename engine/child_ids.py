"""The instance id a sub-orchestration gets when the code that starts it names none."""

from __future__ import annotations

import hashlib

from contracts.limits import MAX_SHORT_STRING_BYTES


def default_child_id(parent_id: str, execution_id: str, task_id: int) -> str:
    """The instance id of a sub-orchestration started without one: the parent's, the
    execution's and the task's ids, so it is deterministic, and distinct across executions
    (continue-as-new restarts task ids).

    A parent id long enough to take the whole past the 255 bytes an id may have is cut, and
    a digest of it stands for the rest: the child of any valid parent must itself be valid,
    and its id still starts with as much of the parent's as fits.
    """
    suffix = f":{execution_id[:8]}:{task_id}"
    child_id = parent_id + suffix
    if len(child_id.encode()) <= MAX_SHORT_STRING_BYTES:
        return child_id
    digest = hashlib.sha256(parent_id.encode()).hexdigest()[:16]
    room = MAX_SHORT_STRING_BYTES - len(suffix) - len(digest) - 1
    prefix = parent_id.encode()[:room].decode(errors="ignore")  # whole characters only
    return f"{prefix}~{digest}{suffix}"
