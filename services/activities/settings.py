"""Activities service settings (``DF_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from durable.settings import CommonSettings


class ActivitiesSettings(CommonSettings):
    """Attributes:
    activity_prefetch: tasks in flight per activity queue (bounds concurrency per activity).
    activity_threads: threads for synchronous activity functions.
    shutdown_seconds: how long SIGTERM waits for running activities.
    """

    activity_prefetch: int = Field(default=64, ge=1)
    activity_threads: int = Field(default=32, ge=1)
    shutdown_seconds: float = Field(default=30.0, gt=0)
