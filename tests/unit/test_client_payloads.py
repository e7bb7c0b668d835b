"""The HTTP API's JSON shapes and the filter values the API and the CLI accept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts import FailureDetails, OrchestrationStatus
from durable.client.payloads import (
    check_status_payload,
    format_time,
    format_timestamp,
    status_payload,
)
from durable.store.queries import InstanceStatus
from services.client.filters import parse_statuses, parse_time

CREATED = datetime(2026, 1, 31, 9, 0, 0, 987654, tzinfo=UTC)


def completed_instance(**changes: object) -> InstanceStatus:
    status = InstanceStatus(
        instance_id="abc",
        name="hello_cities",
        execution_id="e1",
        runtime_status=OrchestrationStatus.COMPLETED,
        input=["Oslo"],
        output=["Hello Oslo!"],
        custom_status={"stage": "done"},
        failure=None,
        correlation_id="abc",
        parent_instance_id=None,
        created_at=CREATED,
        last_updated_at=CREATED + timedelta(seconds=2),
        completed_at=CREATED + timedelta(seconds=2),
    )
    return replace(status, **changes)  # type: ignore[arg-type]


def test_status_payload_uses_durable_functions_names_and_whole_second_utc_times() -> None:
    assert status_payload(completed_instance()) == {
        "name": "hello_cities",
        "instanceId": "abc",
        "runtimeStatus": "Completed",
        "input": ["Oslo"],
        "customStatus": {"stage": "done"},
        "output": ["Hello Oslo!"],
        "createdTime": "2026-01-31T09:00:00Z",
        "lastUpdatedTime": "2026-01-31T09:00:02Z",
    }


def test_status_payload_hides_the_input_and_adds_history_on_request() -> None:
    payload = status_payload(completed_instance(), show_input=False, history_events=[])

    assert payload["input"] is None
    assert payload["historyEvents"] == []


def test_a_failed_instance_reports_its_failure_in_the_output_as_durable_functions_does() -> None:
    failed = completed_instance(
        runtime_status=OrchestrationStatus.FAILED,
        output=None,
        failure=FailureDetails(error_type="ValueError", message="bad input"),
    )

    assert (
        status_payload(failed)["output"] == "Orchestrator function 'hello_cities' failed: bad input"
    )


def test_times_in_another_offset_are_converted_to_utc() -> None:
    plus_two = CREATED.astimezone(timezone(timedelta(hours=2)))

    assert format_time(plus_two) == "2026-01-31T09:00:00Z"
    assert format_timestamp(plus_two) == "2026-01-31T09:00:00.987654Z"
    assert format_timestamp(CREATED.replace(microsecond=0)) == "2026-01-31T09:00:00Z"
    assert format_timestamp(CREATED.replace(microsecond=120000)) == "2026-01-31T09:00:00.12Z"


def test_check_status_links_escape_the_instance_id() -> None:
    payload = check_status_payload("http://host:7071", "order 7/é")

    url = "http://host:7071/runtime/webhooks/durabletask/instances/order%207%2F%C3%A9"
    assert payload["id"] == "order 7/é"
    assert payload["statusQueryGetUri"] == url
    assert payload["purgeHistoryDeleteUri"] == url
    assert payload["sendEventPostUri"] == f"{url}/raiseEvent/{{eventName}}"
    assert payload["terminatePostUri"] == f"{url}/terminate?reason={{text}}"


def test_parse_time_reads_iso_8601_and_takes_naive_times_as_utc() -> None:
    assert parse_time("2026-01-31T09:00:00Z", "x") == datetime(2026, 1, 31, 9, tzinfo=UTC)
    assert parse_time("2026-01-31", "x") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("2026-01-31T10:00:00+01:00", "x") == datetime(2026, 1, 31, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="createdTimeFrom 'soon' is not an ISO 8601 time"):
        parse_time("soon", "createdTimeFrom")


def test_parse_statuses_reads_comma_separated_values_in_any_case() -> None:
    assert parse_statuses(["running,Pending", "COMPLETED", "Running"]) == [
        OrchestrationStatus.RUNNING,
        OrchestrationStatus.PENDING,
        OrchestrationStatus.COMPLETED,
    ]
    assert parse_statuses([" , "]) == []
    with pytest.raises(ValueError, match="'Done' is not one of: Pending, Running"):
        parse_statuses(["Done"])
