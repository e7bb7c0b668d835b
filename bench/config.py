"""Workload sizes for each mode, and where the benchmark finds Postgres and RabbitMQ.

Sizes can be overridden one by one from the command line (``--set w2_instances=500``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

WORKLOADS = ("ceilings", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")
SYSTEMS = ("ours", "dbos", "celery", "temporal")
# W9's signals in flight at once, as many clients signalling would keep; every system's.
W9_SIGNALS_IN_FLIGHT = 256


@dataclass(frozen=True)
class Sizes:
    ceiling_seconds: float = 3.0
    w1_steps: int = 300
    w2_instances: int = 1000
    # W2 runs its batch this many times on every system; the best round is reported.
    w2_rounds: int = 3
    # W8 alternates one orchestrator replica and three this many times (a round each, every
    # one on replicas started afresh); each side's best round is reported.
    w8_rounds: int = 3
    # W8's takeover: the Hello cities chains in flight when one of three replicas is killed.
    w8_takeover_instances: int = 200
    # The replicas' partition leases (DF_LEASE_SECONDS): the orchestrator's default (ADR 27);
    # the takeover takes up to this plus a round (a third of it).
    w8_lease_seconds: float = 5.0
    w3_fan_out: tuple[int, ...] = (1000, 10_000)
    # The peers run the fan-outs up to this size: DBOS needs about five minutes for 10,000
    # here, which alone would break the full mode's fifteen minutes.
    w3_peer_max: int = 1000
    w4_pings: int = 100
    w4_loaded_instances: int = 1000
    w5_timers: int = 10_000
    w5_min_delay: float = 1.0
    w5_max_delay: float = 30.0
    w5_timers_per_instance: int = 100
    # Issue 21's second size: 100,000 timers due in the same window, measured after the
    # 10,000 (full mode; smoke runs a few to check the way; quick leaves them out).
    w5_large_timers: int = 100_000
    # Timers due beyond the orchestrator's hold margin (30 s, ADR 16), whose fires all pass
    # through the delay cascade; measured after W5's own. Quick mode leaves them out (their
    # wait alone is over half a minute).
    w5_cascade_timers: int = 10_000
    w5_cascade_min_delay: float = 40.0
    w5_cascade_max_delay: float = 70.0
    # DBOS sleeps: 10,000 sleeping workflows took DBOS six minutes to run here, so the full
    # mode leaves them out (0) unless asked; quick and smoke measure them at their sizes.
    w5_peer_timers: int = 0
    # Temporal's W2 batch (and the load under its W4): 200 in full mode, the size the issue's
    # ad hoc measurement used; 1,000 three times over took its dev server 4 to 15 minutes
    # here (3 to 12 workflows/s), which alone would break the full mode's fifteen.
    w2_temporal_instances: int = 200
    # Temporal's timers, spread over workflows as ours are (w5_timers_per_instance each): the
    # dev server is measured at the same size as ours unless that proves too much for it.
    w5_temporal_timers: int = 10_000
    w6_short_pad: int = 0
    w6_long_pad: int = 5000
    w6_steps: int = 100
    w6_settle_seconds: float = 3.0
    w7_instances: int = 10_000
    w7_resumes: int = 20
    # DBOS's waiting workflows: 2,000 in full mode (10,000 took it over five minutes); its
    # memory per waiting workflow is compared, its total only when the counts are equal.
    w7_peer_instances: int = 2000
    # Entity signals (ADR 38): this many to one counter, then this many spread evenly over
    # w9_entities counters.
    w9_signals: int = 10_000
    w9_entities: int = 1000
    # Temporal's entity workflow continues as new after this many signals, so its history
    # stays bounded however long it lives (smoke mode makes it small to exercise the hand-over).
    w9_temporal_signals_per_run: int = 1000


MODES: dict[str, Sizes] = {
    "full": Sizes(),
    "quick": Sizes(
        ceiling_seconds=1.0,
        w1_steps=100,
        w2_instances=100,
        w8_rounds=1,
        w8_takeover_instances=100,
        w3_fan_out=(1000,),
        w4_pings=20,
        w4_loaded_instances=100,
        w5_timers=500,
        w5_min_delay=1.0,
        w5_max_delay=3.0,
        w5_large_timers=0,
        w5_cascade_timers=0,
        w5_peer_timers=500,
        w5_temporal_timers=500,
        w2_temporal_instances=100,
        w6_long_pad=2000,
        w6_steps=50,
        w7_instances=500,
        w7_resumes=5,
        w7_peer_instances=500,
        w9_signals=2000,
    ),
    # What the test suite runs: every workload, tiny, to check the suite works.
    "smoke": Sizes(
        ceiling_seconds=0.3,
        w1_steps=10,
        w2_instances=10,
        w2_rounds=1,
        w8_rounds=1,
        w8_takeover_instances=10,
        w3_fan_out=(20,),
        w4_pings=3,
        w4_loaded_instances=10,
        w5_timers=20,
        w5_min_delay=1.0,
        w5_max_delay=2.0,
        w5_large_timers=40,
        w5_cascade_timers=20,
        w5_cascade_min_delay=31.5,
        w5_cascade_max_delay=32.5,
        w5_peer_timers=20,
        w5_temporal_timers=20,
        w2_temporal_instances=10,
        w6_short_pad=0,
        w6_long_pad=50,
        w6_steps=5,
        w6_settle_seconds=0.5,
        w7_instances=20,
        w7_resumes=2,
        w7_peer_instances=20,
        w9_signals=40,
        w9_entities=20,
        w9_temporal_signals_per_run=10,
    ),
}


def sizes_for(mode: str, overrides: list[str]) -> Sizes:
    """The mode's sizes with ``name=value`` overrides applied (``w3_fan_out=1000,5000``)."""
    sizes = MODES[mode]
    fields = {f.name: f for f in dataclasses.fields(Sizes)}
    # Any: each value's type is its field's (checked by name above), which a dict cannot say.
    changes: dict[str, Any] = {}
    for override in overrides:
        name, _, text = override.partition("=")
        name = name.strip().replace(".", "_")
        if name not in fields:
            raise SystemExit(f"unknown size {name!r}; known: {', '.join(fields)}")
        current = getattr(sizes, name)
        if isinstance(current, tuple):
            changes[name] = tuple(int(part) for part in text.split(",") if part)
        else:
            changes[name] = type(current)(text)
    return dataclasses.replace(sizes, **changes)


@dataclass(frozen=True)
class Endpoints:
    """The shared Postgres (an admin connection that may create databases) and RabbitMQ."""

    admin_database_url: str
    amqp_url: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        return cls(
            admin_database_url=os.environ.get(
                "DF_BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
            ),
            amqp_url=os.environ.get("DF_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        )

    def database_url(self, name: str) -> str:
        base, _, _ = self.admin_database_url.rpartition("/")
        return f"{base}/{name}"
