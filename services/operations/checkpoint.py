"""Where a ``republish`` run stopped: a small JSON file, replaced atomically after every page.

The order of the stream is ``(transaction_id, global_position)`` (see ``republish``). The
checkpoint holds the ``cursor``, the last key up to which every event has been published, and
``early``: the few keys beyond it already published out of that order (an instance's earlier
event pulled ahead of its later one). It is kept in a file, not in the database, so the
command writes nothing to the event store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durable.store.feed import EventKey as Key
from services.operations.session import EXIT_ATTENTION, EXIT_USAGE, OperationError

VERSION = 1


START = Key(0, 0)


@dataclass
class Checkpoint:
    """Attributes:
    target: where the events go, e.g. ``queue:audit`` or ``exchange:events``.
    start: the run's selection (``from_position`` or ``from_time``), fixed at the first run.
    """

    target: str
    start: dict[str, Any]
    cursor: Key = START
    early: set[Key] = field(default_factory=set)
    published: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "target": self.target,
            "start": self.start,
            "cursor": [self.cursor.transaction_id, self.cursor.global_position],
            "early": sorted([k.transaction_id, k.global_position] for k in self.early),
            "published": self.published,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        if data.get("version") != VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r}, expected {VERSION}")
        return cls(
            target=str(data["target"]),
            start=dict(data["start"]),
            cursor=Key(*(int(part) for part in data["cursor"])),
            early={Key(int(x), int(p)) for x, p in data["early"]},
            published=int(data["published"]),
        )

    def advance(self, page: list[Key], done: set[Key]) -> None:
        """Move the cursor over the page's leading keys that are published (now or before),
        and keep the rest of ``done`` as published early."""
        early = self.early | done
        for key in page:
            if key not in early:
                break
            self.cursor = key
        self.early = {key for key in early if key > self.cursor}


def load(path: Path, target: str, start: dict[str, Any] | None) -> Checkpoint:
    """The checkpoint at ``path``, or a new one when the file does not exist.

    Refuses a checkpoint written for another target or another start.
    """
    if not path.exists():
        return Checkpoint(target, start or {})
    try:
        checkpoint = Checkpoint.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OperationError(EXIT_USAGE, f"cannot read checkpoint {path}: {error}") from None
    if checkpoint.target != target:
        raise OperationError(
            EXIT_USAGE,
            f"checkpoint {path} is for {checkpoint.target}, not {target}; use another file",
        )
    if start is not None and start != checkpoint.start:
        raise OperationError(
            EXIT_USAGE,
            f"checkpoint {path} started with {checkpoint.start or 'everything'}; "
            "leave out --from-position/--from-time to resume it, or use another file",
        )
    return checkpoint


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the file atomically (a crash leaves the old or the new one, never half)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as file:
        json.dump(checkpoint.to_json(), file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Only one run at a time may use a checkpoint."""
    lock_path = path.with_name(f".{path.name}.lock")
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OperationError(
                EXIT_ATTENTION, f"another republish is running with checkpoint {path}"
            ) from None
        yield
