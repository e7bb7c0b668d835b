"""Reading this process's metrics back from prometheus_client's default registry."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The value of one sample (``…_total``, ``…_count``, ``…_bucket`` with ``le``), 0 if the
    series does not exist yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
