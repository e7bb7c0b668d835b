"""Log lines: JSON or console by setting, bound to the service and to what is being handled;
the standard library's records rendered the same way, secrets masked in both."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import structlog

from durable.settings import CommonSettings
from services.client.settings import ClientSettings
from services.common.logging import configure_logging

pytestmark = pytest.mark.usefixtures("restored_logging")

MANAGEMENT_KEY = "management-key-0123456789abcdef"
DATABASE_PASSWORD = "db-password-9f8e7d6c"


def client_settings(**overrides: str) -> ClientSettings:
    return ClientSettings(
        database_url=f"postgresql://durable:{DATABASE_PASSWORD}@db.internal:5432/durable",
        management_keys=f"{MANAGEMENT_KEY},another-management-key-2",
        **overrides,
    )


def test_json_lines_carry_service_instance_and_message_ids(capsys):
    configure_logging("activities", CommonSettings(log_format="json", log_level="info"))
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
    configure_logging("orchestrator", CommonSettings(log_format="console", log_level="warning"))
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


def test_format_and_level_given_override_the_settings(capsys):
    configure_logging(
        "cli",
        CommonSettings(log_format="json", log_level="debug"),
        log_format="console",
        level="error",
    )
    log = structlog.get_logger("test")

    log.warning("hidden")
    log.error("shown")

    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "shown" in err
    assert not err.lstrip().startswith("{")


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_keys_and_passwords_are_masked_in_structlog_lines(capsys, log_format):
    configure_logging("client", client_settings(log_format=log_format))
    log = structlog.get_logger("test")

    log.warning(
        "http.request",
        url=f"http://api/runtime/webhooks/durabletask/instances/i?code={MANAGEMENT_KEY}",
        error=f"password authentication failed: {DATABASE_PASSWORD}",
    )

    err = capsys.readouterr().err
    assert "http.request" in err
    assert MANAGEMENT_KEY not in err
    assert DATABASE_PASSWORD not in err
    assert "code=***" in err


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_standard_library_records_are_rendered_and_masked_like_structlog_lines(capsys, log_format):
    configure_logging("client", client_settings(log_format=log_format))
    try:
        raise ConnectionError(f"cannot connect to amqp://guest:{DATABASE_PASSWORD}@broker/")
    except ConnectionError:
        logging.getLogger("aiormq.connection").warning("connection lost", exc_info=True)
    logging.getLogger("asyncpg").info("below the libraries' level")

    err = capsys.readouterr().err
    assert DATABASE_PASSWORD not in err
    assert "amqp://***@broker/" in err
    assert "below the libraries' level" not in err
    if log_format == "json":
        line = json.loads(err.strip())
        assert line["logger"] == "aiormq.connection"
        assert line["service"] == "client"
        assert line["level"] == "warning"
        assert "ConnectionError" in line["exception"]
    else:
        assert "connection lost" in err
        assert "service=client" in err


def test_uvicorn_loggers_without_their_own_config_reach_the_same_handler(capsys):
    uvicorn = pytest.importorskip("uvicorn")
    configure_logging("client", client_settings(log_format="json"))
    # As the client service configures it.
    uvicorn.Config(app=None, log_level="warning", access_log=False, log_config=None)

    logging.getLogger("uvicorn.error").error("Exception in ASGI application ?code=%s", "k" * 20)

    line = json.loads(capsys.readouterr().err.strip())
    assert line["logger"] == "uvicorn.error"
    assert line["event"] == "Exception in ASGI application ?code=***"


def test_an_uncaught_exception_is_logged_masked_not_printed(capsys):
    configure_logging("client", client_settings(log_format="json"))
    try:
        raise RuntimeError(f"could not start with key {MANAGEMENT_KEY}")
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)

    line = json.loads(capsys.readouterr().err.strip())
    assert line["event"] == "process.uncaught_exception"
    assert line["level"] == "critical"
    assert "RuntimeError: could not start with key ***" in line["exception"]
