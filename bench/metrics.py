"""The benchmark's metrics: for each workload, the figures the table reports, which way is
better, and issue 21's targets for them (``bench/targets.py``). ``bench/report`` turns them
into rows."""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import SYSTEMS
from bench.targets import (
    AtLeast,
    AtMost,
    BeatPeers,
    OfCeiling,
    Target,
    WithinLeases,
    describe,
)

PEERS = tuple(s for s in SYSTEMS if s != "ours")


@dataclass(frozen=True)
class Metric:
    workload: str
    key: str
    label: str
    unit: str
    higher_is_better: bool
    # The targets for this row (bench/targets.py), all to be met.
    targets: tuple[Target, ...] = ()
    # The peers' metric to set beside ours, when it is not the same key.
    peer_key: str | None = None

    def describe_target(self) -> str:
        return describe(self.targets)


# Issue 21's targets, every one a ratio or a limit within one run.
ROUND_TRIP_CEILING = OfCeiling(
    "round_trip_step_ceiling_per_s", 0.8, "1 commit + 1 round trip in series"
)
# ADR 27: a crash's partitions are taken over within a lease and a round (a third of one).
A_LEASE_AND_A_ROUND = WithinLeases(4 / 3, "a lease + a round (ADR 27)")
W2_PEERS = (BeatPeers(3, ("dbos",)), BeatPeers(10, ("celery", "temporal")))
TENTH_OF_THE_CPU = (BeatPeers(10),)


def metrics_for(fan_out_sizes: tuple[int, ...]) -> list[Metric]:
    fan_out = []
    for count in fan_out_sizes:
        targets = (BeatPeers(4),) if count == 1000 else ()
        fan_out += [
            Metric(
                "W3",
                f"fan_out_{count}_wall_s",
                f"fan-out/fan-in of {count}: wall",
                "s",
                False,
                targets,
            ),
            Metric(
                "W3",
                f"fan_out_{count}_activities_per_s",
                f"fan-out of {count}: activities/s",
                "1/s",
                True,
            ),
        ]
    return [
        Metric(
            "ceilings",
            "postgres_commits_per_s_1_connection",
            "Postgres commits/s, 1 connection",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "postgres_commits_per_s_8_connections",
            "Postgres commits/s, 8 connections",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "rabbitmq_confirmed_publishes_per_s_1_in_flight",
            "RabbitMQ confirmed publishes/s, 1 in flight",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "rabbitmq_confirmed_publishes_per_s_100_in_flight",
            "RabbitMQ confirmed publishes/s, 100 in flight",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "serial_step_ceiling_per_s",
            "steps/s allowed by 1 commit + 2 confirms in series",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "rabbitmq_round_trips_per_s",
            "RabbitMQ round trips/s through two quorum queues",
            "1/s",
            True,
        ),
        Metric(
            "ceilings",
            "round_trip_step_ceiling_per_s",
            "steps/s allowed by 1 commit + 1 round trip in series",
            "1/s",
            True,
        ),
        Metric(
            "W1",
            "activities_per_s",
            "sequential activities/s",
            "1/s",
            True,
            (ROUND_TRIP_CEILING,),
        ),
        Metric("W1", "step_p50_ms", "per-step latency p50", "ms", False),
        Metric("W1", "step_p99_ms", "per-step latency p99", "ms", False),
        Metric(
            "W1",
            "local_activities_per_s",
            "sequential local activities/s",
            "1/s",
            True,
            (BeatPeers(1.5),),
            peer_key="activities_per_s",
        ),
        Metric(
            "W1",
            "local_step_p50_ms",
            "local per-step latency p50",
            "ms",
            False,
            peer_key="step_p50_ms",
        ),
        Metric(
            "W1",
            "local_step_p99_ms",
            "local per-step latency p99",
            "ms",
            False,
            peer_key="step_p99_ms",
        ),
        Metric(
            "W2", "orchestrations_per_s", "Hello cities orchestrations/s", "1/s", True, W2_PEERS
        ),
        Metric("W2", "wall_s", "first start to last completion", "s", False),
        Metric(
            "W2",
            "local_orchestrations_per_s",
            "Hello cities, local activity: orchestrations/s",
            "1/s",
            True,
            W2_PEERS,
            peer_key="orchestrations_per_s",
        ),
        Metric(
            "W2",
            "cpu_ms_per_orchestration",
            "CPU per orchestration, whole machine",
            "ms",
            False,
            TENTH_OF_THE_CPU,
        ),
        Metric(
            "W2",
            "local_cpu_ms_per_orchestration",
            "CPU per orchestration, local activity, whole machine",
            "ms",
            False,
            TENTH_OF_THE_CPU,
            peer_key="cpu_ms_per_orchestration",
        ),
        Metric(
            "W8",
            "one_replica_orchestrations_per_s",
            "Hello cities, one orchestrator replica: orchestrations/s",
            "1/s",
            True,
        ),
        Metric(
            "W8",
            "three_replicas_orchestrations_per_s",
            "Hello cities, three orchestrator replicas: orchestrations/s",
            "1/s",
            True,
        ),
        Metric("W8", "three_over_one", "three replicas ÷ one", "x", True, (AtLeast(0.9, "x"),)),
        Metric(
            "W8",
            "one_replica_cpu_ms_per_orchestration",
            "CPU per orchestration, one replica, whole machine",
            "ms",
            False,
        ),
        Metric(
            "W8",
            "three_replicas_cpu_ms_per_orchestration",
            "CPU per orchestration, three replicas, whole machine",
            "ms",
            False,
        ),
        Metric(
            "W8",
            "takeover_s",
            "one of three replicas killed: its partitions held again",
            "s",
            False,
            (A_LEASE_AND_A_ROUND,),
        ),
        Metric(
            "W8",
            "takeover_completed_s",
            "one of three killed: a chain started in its partitions completed",
            "s",
            False,
        ),
        *fan_out,
        Metric("W4", "idle_p50_ms", "event → recorded, idle, p50", "ms", False, (BeatPeers(2),)),
        Metric(
            "W4", "idle_p99_ms", "event → recorded, idle, p99", "ms", False, (AtMost(50, "ms"),)
        ),
        Metric("W4", "loaded_p50_ms", "event → recorded, under W2 load, p50", "ms", False),
        Metric(
            "W4",
            "loaded_p99_ms",
            "event → recorded, under W2 load, p99",
            "ms",
            False,
            (BeatPeers(2, ("dbos",)),),
        ),
        Metric("W5", "lateness_p50_ms", "timer lateness p50", "ms", False),
        Metric("W5", "lateness_p99_ms", "timer lateness p99", "ms", False, (AtMost(50, "ms"),)),
        Metric("W5", "lateness_max_ms", "timer lateness max", "ms", False),
        Metric(
            "W5", "lateness_last_third_p99_ms", "lateness p99, last third of due times", "ms", False
        ),
        Metric("W5", "fires_lost", "timer fires lost", "", False, (AtMost(0),)),
        Metric(
            "W5",
            "large_lateness_p99_ms",
            "the large run (100,000 in full mode): timer lateness p99",
            "ms",
            False,
            (AtMost(200, "ms"),),
        ),
        Metric(
            "W5", "large_fires_lost", "the large run: timer fires lost", "", False, (AtMost(0),)
        ),
        Metric(
            "W5", "large_timers_recorded_s", "the large run: every timer recorded after", "s", False
        ),
        Metric(
            "W5",
            "large_due_after_recorded_lateness_p99_ms",
            "the large run: lateness p99 of fires due once every timer was recorded",
            "ms",
            False,
        ),
        Metric("W5", "cascade_lateness_p50_ms", "via the cascade: timer lateness p50", "ms", False),
        Metric("W5", "cascade_lateness_p99_ms", "via the cascade: timer lateness p99", "ms", False),
        Metric("W5", "cascade_fires_lost", "timers via the cascade: fires lost", "", False),
        Metric("W6", "step_ms_short", "cached step at the short history", "ms", False),
        Metric("W6", "step_ms_long", "cached step at the long history", "ms", False),
        Metric(
            "W6",
            "step_cost_ratio_long_over_short",
            "step cost long ÷ short",
            "x",
            False,
            (AtMost(1.2, "x"),),
        ),
        Metric(
            "W6",
            "cold_replay_events_per_s",
            "cold replay (engine)",
            "events/s",
            True,
            (AtLeast(50_000, "events/s"),),
        ),
        Metric(
            "W6", "cold_load_events_per_s", "cold load + decode from Postgres", "events/s", True
        ),
        Metric(
            "W7",
            "orchestrator_rss_mb",
            "RSS with the instances waiting",
            "MB",
            False,
            (AtMost(300, "MB"),),
        ),
        Metric("W7", "rss_kb_per_waiting_instance", "RSS per waiting instance", "KB", False),
        Metric("W7", "resume_p50_ms", "time to resume one (event → completed) p50", "ms", False),
        Metric("W9", "one_entity_signals_per_s", "signals/s to one entity", "1/s", True),
        Metric(
            "W9", "many_entities_signals_per_s", "signals/s spread over the entities", "1/s", True
        ),
        Metric("W9", "send_per_s", "signals/s sent (confirmed by the broker)", "1/s", True),
    ]
