"""The HTTP API's answers as its OpenAPI documents them.

The routes build these bodies as plain JSON (``payloads``), in Durable Functions' field names;
the models here only describe them, so that the OpenAPI says what each answer holds, and
Schemathesis holds every answer of the real service to it
(``tests/e2e/test_openapi_schemathesis.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from contracts import OrchestrationStatus


class CheckStatusPayload(BaseModel):
    """The links to follow an instance: Durable Functions' ``CreateCheckStatusResponse``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The instance id.")
    status_query_get_uri: str = Field(alias="statusQueryGetUri")
    send_event_post_uri: str = Field(alias="sendEventPostUri")
    terminate_post_uri: str = Field(alias="terminatePostUri")
    purge_history_delete_uri: str = Field(alias="purgeHistoryDeleteUri")
    restart_post_uri: str = Field(alias="restartPostUri")
    suspend_post_uri: str = Field(alias="suspendPostUri")
    resume_post_uri: str = Field(alias="resumePostUri")


class InstanceStatusPayload(BaseModel):
    """An instance's status, in Durable Functions' JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The orchestrator's name.")
    instance_id: str = Field(alias="instanceId")
    runtime_status: OrchestrationStatus = Field(alias="runtimeStatus")
    input: JsonValue = Field(description="null with showInput=false.")
    custom_status: JsonValue = Field(alias="customStatus")
    output: JsonValue = Field(
        description="The result; the reason of a Terminated instance; the failure, as one "
        "string, of a Failed one."
    )
    created_time: datetime = Field(alias="createdTime")
    last_updated_time: datetime = Field(alias="lastUpdatedTime")
    version: str | None = Field(
        default=None,
        description="The app version the instance started under (DF_APP_VERSION), once it "
        "has started with one; absent otherwise. Beyond Durable Functions.",
    )
    history_events: list[dict[str, JsonValue]] | None = Field(
        default=None,
        alias="historyEvents",
        description="Only with showHistory=true, once the instance has started.",
    )


class PurgeResult(BaseModel):
    """How many instances a purge deleted (a purge that finds none answers 404)."""

    model_config = ConfigDict(extra="forbid")

    instances_deleted: int = Field(alias="instancesDeleted", ge=1)


def header(description: str) -> dict[str, Any]:
    """An OpenAPI response header holding a string."""
    return {"description": description, "schema": {"type": "string"}}


LOCATION = header("The instance's status URL (statusQueryGetUri).")
RETRY_AFTER = header("Seconds to wait before asking again.")
