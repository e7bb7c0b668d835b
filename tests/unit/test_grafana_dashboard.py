"""The Grafana dashboard and the Prometheus set-up in deploy/ match the metrics the services
export: every series a panel queries exists, and Prometheus scrapes the three services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from services.common import metrics

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "durable-dashboard.json"


def exported_series() -> set[str]:
    """Every sample name the metrics of ``services.common.metrics`` expose."""
    names: set[str] = set()
    for metric in vars(metrics).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        [family] = metric.describe()
        if isinstance(metric, Counter):
            names.add(f"{family.name}_total")
        elif isinstance(metric, Histogram):
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names


def queries(dashboard: dict[str, object]) -> list[str]:
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_every_series_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    assert len(exprs) >= 20
    used = {name for expr in exprs for name in re.findall(r"\bdurable_[a-z_]+", expr)}
    assert used - exported_series() == set()


def test_the_dashboard_shows_each_concern() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Throughput", "Latencies", "Backlog", "Failures", "Cache and partitions"]
    assert any("histogram_quantile" in expr for expr in queries(dashboard))
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


def test_prometheus_scrapes_the_three_services_and_grafana_is_provisioned() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"client", "orchestrator", "activities"}
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    for service in ("prometheus", "grafana"):
        image = compose["services"][service]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{image}: not pinned"
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "deploy/grafana/durable-dashboard.json" in mounts
