"""Log lines: JSON or console by setting, bound to the service and to what is being handled."""

from __future__ import annotations

import json

import pytest
import structlog

from services.common.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog():
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_json_lines_carry_service_instance_and_message_ids(capsys):
    configure_logging("activities", log_format="json", level="info")
    log = structlog.get_logger("test")

    with structlog.contextvars.bound_contextvars(instance_id="i-1", message_id="m-1"):
        log.info("activity.completed", activity="say_hello")

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "activity.completed"
    assert line["service"] == "activities"
    assert line["instance_id"] == "i-1"
    assert line["message_id"] == "m-1"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_console_format_is_not_json_and_level_filters(capsys):
    configure_logging("orchestrator", log_format="console", level="warning")
    log = structlog.get_logger("test")

    log.info("hidden")
    log.warning("shown", instance_id="i-2")

    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "shown" in err
    assert "instance_id=i-2" in err
    assert "service=orchestrator" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip().splitlines()[-1])
