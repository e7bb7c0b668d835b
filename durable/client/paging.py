"""Pages of instances, and the opaque continuation tokens that lead from one to the next."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from durable.store.queries import InstanceStatus


@dataclass(frozen=True)
class InstancePage:
    """One page of a query; pass ``continuation_token`` back to get the next one."""

    instances: list[InstanceStatus]
    continuation_token: str | None


def encode_continuation_token(last: InstanceStatus) -> str:
    """An opaque token for the page after ``last`` (its creation time and id)."""
    raw = json.dumps([last.created_at.isoformat(), last.instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continuation_token(token: str) -> tuple[datetime, str]:
    """Raises ``ValueError`` for a token this client did not produce."""
    try:
        created, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created), str(instance_id)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid continuation token {token!r}") from error
