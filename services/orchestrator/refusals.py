"""Which inbound messages an instance records, and what becomes of the others.

Most messages an instance does not take are normal under at-least-once delivery: a repeated
event, a result that came again after it was recorded, a fire of a timer since cancelled, a
message for an earlier execution. They are dropped with a debug line (ADR 2). An answer to a
call the execution never made is not: it is logged as a warning and handed back with its
reason, for the consumer to dead-letter (ADR 21).
"""

from __future__ import annotations

import structlog

from contracts import EventRaised, ExecutionRewound, OrchestratorMessage
from engine import Refusal
from services.orchestrator.cache import InstanceState
from services.orchestrator.episode import Batch, RefusedMessage


def refusal(state: InstanceState, message: OrchestratorMessage) -> Refusal | None:
    """Why the instance does not record ``message`` now, or None when it does."""
    envelope, event = message.envelope, message.body
    if envelope.execution_id is not None and envelope.execution_id != state.execution_id:
        return Refusal(f"for execution {envelope.execution_id}, current is {state.execution_id}")
    if isinstance(event, EventRaised) and envelope.message_id in state.raised_message_ids:
        return Refusal("duplicate event")
    if isinstance(event, ExecutionRewound):
        return Refusal("only a Failed instance can be rewound")
    return state.executor.refusal(event) if state.executor is not None else None


def refuse(
    log: structlog.typing.FilteringBoundLogger,
    state: InstanceState,
    message: OrchestratorMessage,
    refused: Refusal,
    batch: Batch,
) -> None:
    """Drop ``message``: quietly when it is normal, else onto ``batch.refused``."""
    fields = {"message_id": str(message.envelope.message_id), "type": message.envelope.type}
    if not refused.never_scheduled:
        log.debug("message.dropped", **fields, reason=refused.reason)
        return
    reason = (
        f"{message.envelope.type} for instance {state.instance_id!r} "
        f"(execution {state.execution_id}): {refused.reason}"
    )
    log.warning("message.never_scheduled", **fields, reason=reason)
    batch.refused.append(RefusedMessage(message, reason))
