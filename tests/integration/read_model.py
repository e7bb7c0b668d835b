"""Putting instances in a state directly in the read model, for client tests that run without
an orchestrator (the state an orchestrator would have recorded)."""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import FailureDetails, OrchestrationStatus
from durable.store.columns import json_text


async def set_state(
    pool: asyncpg.Pool,
    instance_id: str,
    status: OrchestrationStatus,
    *,
    output: Any = None,
    custom_status: Any = None,
    failure: FailureDetails | None = None,
) -> None:
    ended = status.is_terminal
    updated = await pool.execute(
        """
        UPDATE instances
        SET status = $2, output = $3::jsonb, custom_status = $4::jsonb, failure = $5::jsonb,
            updated_at = now(), completed_at = CASE WHEN $6 THEN now() END
        WHERE instance_id = $1
        """,
        instance_id,
        status.value,
        json_text(output),
        json_text(custom_status),
        failure.model_dump_json() if failure else None,
        ended,
    )
    assert updated == "UPDATE 1", f"no instance {instance_id!r}"
