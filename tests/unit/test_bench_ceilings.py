"""The step ceilings derived from the machine's measured rates."""

from __future__ import annotations

from bench.ceilings import serial_step_ceiling


def test_both_ceilings_from_the_measured_rates() -> None:
    measured = {
        "postgres_commits_per_s_1_connection": 2000.0,  # 0.5 ms a commit
        "rabbitmq_confirmed_publishes_per_s_1_in_flight": 1000.0,  # 1 ms a confirm
        "rabbitmq_round_trips_per_s": 400.0,  # 2.5 ms a round trip
    }

    assert serial_step_ceiling(measured) == {
        "serial_step_ceiling_per_s": 400,  # 0.5 + 2 * 1 ms
        "round_trip_step_ceiling_per_s": 333,  # 0.5 + 2.5 ms
    }


def test_a_ceiling_is_left_out_when_what_it_needs_was_not_measured() -> None:
    commits_only = {"postgres_commits_per_s_1_connection": 2000.0}
    without_round_trips = {
        **commits_only,
        "rabbitmq_confirmed_publishes_per_s_1_in_flight": 1000.0,
    }

    assert serial_step_ceiling(commits_only) == {}
    assert serial_step_ceiling(without_round_trips) == {"serial_step_ceiling_per_s": 400}
    assert serial_step_ceiling({"rabbitmq_round_trips_per_s": 400.0}) == {}
