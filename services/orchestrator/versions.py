"""The version gate: which instances this process runs, by the version they started with.

Every start this process records is stamped with its ``DF_APP_VERSION`` (a start that names
one, a child's with its parent's, keeps it). Before an instance that is not cached runs, its
version is checked against the process's policy (``engine.versions``):

- run: as always;
- leave waiting (``reject``): nothing is recorded, and each of its messages goes back to its
  partition through the delay cascade, with its own message id, to be tried again in
  ``DF_VERSION_RETRY_SECONDS``, by whichever process then holds the partition. The messages
  go through the outbox of the batch's transaction, so none is lost, and each is tried once
  per period, never in a hot loop (docs/adr/0034);
- fail: the instance ends Failed with a ``VersionMismatch`` failure, without running its code.

An instance left waiting can still be terminated: its code does not run for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from contracts import (
    ExecutionStarted,
    ExecutionTerminated,
    FailureDetails,
    OrchestratorMessage,
    Topology,
)
from durable.broker import OutgoingMessage
from engine.versions import Verdict, VersionPolicy
from services.orchestrator.cache import InstanceState
from services.orchestrator.episode import Batch

log = structlog.get_logger(__name__)


class VersionGate:
    """Stamps starts with this process's version and screens instances by theirs."""

    def __init__(self, policy: VersionPolicy, topology: Topology, retry_seconds: int) -> None:
        self.policy = policy
        self._topology = topology
        self._retry_seconds = retry_seconds

    def admit(
        self,
        state: InstanceState,
        messages: Sequence[OrchestratorMessage],
        now: datetime,
        batch: Batch,
    ) -> tuple[list[OrchestratorMessage], FailureDetails | None] | None:
        """The messages to run ``state``'s episode with (starts ``stamped``), and the
        failure to end it with when it is to fail; ``None`` when it is left waiting (its
        messages are on ``batch``, to come back later)."""
        stamped = self.stamped(messages)
        if state.admitted:
            return stamped, None
        verdict, failure = self.screen(state, stamped)
        if verdict is Verdict.WAIT:
            batch.messages += self.retry_later(stamped, now)
            return None
        if verdict is Verdict.FAIL:
            state.executor = None  # ends it without running its code
        state.admitted = verdict is Verdict.RUN and state.started
        return stamped, failure

    def stamped(self, messages: Sequence[OrchestratorMessage]) -> list[OrchestratorMessage]:
        """``messages``, each start without a version given this process's."""
        version = self.policy.version
        if version is None:
            return list(messages)
        return [
            message.model_copy(
                update={"body": message.body.model_copy(update={"version": version})}
            )
            if isinstance(message.body, ExecutionStarted) and message.body.version is None
            else message
            for message in messages
        ]

    def screen(
        self, state: InstanceState, messages: Sequence[OrchestratorMessage]
    ) -> tuple[Verdict, FailureDetails | None]:
        """Whether to run ``state``'s instance with ``messages`` (already ``stamped``); with
        the failure to record when it is to fail."""
        if not state.started:
            start = next((m.body for m in messages if isinstance(m.body, ExecutionStarted)), None)
            if start is None:
                return Verdict.RUN, None  # nothing to run yet; the messages are refused as usual
            state.version = start.version
        verdict = self.policy.verdict(state.version)
        if verdict is Verdict.RUN:
            return verdict, None
        reason = self.policy.mismatch(state.version)
        if verdict is Verdict.WAIT and any(
            isinstance(m.body, ExecutionTerminated) for m in messages
        ):
            verdict = Verdict.FAIL  # ends it without its code, as a termination should
        failure = FailureDetails(
            error_type="VersionMismatch",
            message=f"orchestrator {state.name!r} cannot run here: {reason}",
            is_non_retriable=True,
        )
        log.info(
            "orchestration.version_refused",
            instance_id=state.instance_id,
            name=state.name,
            version=state.version,
            verdict=verdict.value,
        )
        return verdict, failure

    def retry_later(
        self, messages: Sequence[OrchestratorMessage], now: datetime
    ) -> list[OutgoingMessage]:
        """The messages of an instance left waiting, routed to come back to its partition."""
        return [
            OutgoingMessage.of(
                message,
                self._topology.delay_entry_exchange,
                self._topology.delay_routing_key(self._retry_seconds, message.envelope.instance_id),
            )
            for message in messages
        ]
