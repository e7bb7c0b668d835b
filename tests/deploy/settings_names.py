"""The environment variables each service reads: its settings classes' fields as pydantic-settings
names them (``env_prefix`` + field name, case-insensitive), so a manifest that sets a variable
no service reads (a typo, a setting that was renamed) is found."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from services.activities.settings import ActivitiesSettings
from services.client.settings import ClientSettings
from services.operations.broker_definitions import PASSWORD_VARIABLE
from services.orchestrator.settings import OrchestratorSettings
from workflows.approval.config import ApprovalSettings
from workflows.approval.inbound import ApprovalEntrySettings

# Functions modules' settings are read where their code runs: the approval workflow's
# activities in the activities service, its entry points in the client service.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "orchestrator": (OrchestratorSettings,),
    "activities": (ActivitiesSettings, ApprovalSettings),
    "client": (ClientSettings, ApprovalEntrySettings),
}


def names(*classes: type[BaseSettings]) -> set[str]:
    found: set[str] = set()
    for settings in classes:
        prefix = settings.model_config.get("env_prefix", "")
        for name, field in settings.model_fields.items():
            found.add((field.alias or f"{prefix}{name}").upper())
    return found


def service_settings(service: str) -> set[str]:
    """What ``python -m services.<service>`` reads."""
    return names(*SETTINGS[service])


def any_service_settings() -> set[str]:
    return set().union(*(service_settings(service) for service in SETTINGS))


BROKER_PASSWORDS = {
    PASSWORD_VARIABLE.format(role.upper())
    for role in ("orchestrator", "activities", "client", "operator")
}
"""What ``durable-ops broker-definitions`` reads besides the common settings."""
