"""The proposal-approval workflow, in one package: a function module (``DF_FUNCTION_MODULES``)
that also declares its broker entry points (``entry_points``, consumed by the client service).

- ``messages``: what submitters, approvers and authors exchange with it (pydantic models);
  their JSON Schema is in ``schema/`` (``python -m workflows.approval.jsonschema``).
- ``topology``: its queues and exchanges within the deployment's namespace.
- ``inbound``: its entry points (submissions start it, responses decide it) and who may answer.
- ``orchestrator``: ``proposal_approval`` and its activities; ``config``: the hierarchy and the
  deadlines; ``publisher``: the requests and outcomes it publishes.
"""

from workflows.approval.inbound import entry_points
from workflows.approval.messages import APPROVAL_ORCHESTRATOR, RESPONSE_EVENT
from workflows.approval.orchestrator import NOTIFY_RETRY_SECONDS, app, proposal_approval

__all__ = [
    "APPROVAL_ORCHESTRATOR",
    "NOTIFY_RETRY_SECONDS",
    "RESPONSE_EVENT",
    "app",
    "entry_points",
    "proposal_approval",
]
