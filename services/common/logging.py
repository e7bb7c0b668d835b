"""structlog set-up: console lines for people, JSON lines for pipelines.

Every line carries the service name; handlers bind ``instance_id``, ``message_id`` and
``correlation_id`` (``structlog.contextvars`` or ``log.bind``) where they are known.

Every line a service writes goes through one renderer, whether it was logged with structlog
or through the standard library (aio-pika, aiormq, asyncpg, uvicorn), and so does an
uncaught exception: tracebacks are plain and bounded, without local variables
(``tracebacks``), and secrets are masked in the rendered text (``redaction``). ADR 22.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from durable.redaction import Redactor
from durable.settings import CommonSettings
from services.common.tracebacks import format_exception

LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


def configure_logging(
    service: str,
    settings: CommonSettings,
    *,
    log_format: LogFormat | None = None,
    level: LogLevel | None = None,
) -> None:
    """Configure structlog and the standard library's logging for one service process.

    Args:
        service: the name every line carries.
        settings: the process's settings: their secrets are masked in every line, and they
            give the format and level unless these are passed.
        log_format: ``console`` or ``json``; ``settings.log_format`` when not given.
        level: the lowest level logged; ``settings.log_level`` when not given. Libraries
            logging through the standard library log warnings and above whatever it is.
    """
    numeric_level = logging.getLevelNamesMapping()[(level or settings.log_level).upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.ExceptionRenderer(format_exception),
    ]
    renderer: Processor
    if (log_format or settings.log_format) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        # ExceptionRenderer above has already rendered any exception; the plain formatter
        # only makes sure Rich's (which shows locals by default) is never used.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    redacting = _RedactingRenderer(renderer, Redactor.from_settings(settings))
    structlog.configure(
        processors=[*shared, redacting],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # One write per line (print() writes the line and its newline apart): the processes
        # of a supervised service share one stderr, and their lines must not interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    _route_standard_library(redacting, shared, max(numeric_level, logging.WARNING))
    # Python's warnings (a library's DeprecationWarning, ResourceWarning) would print plain
    # text to stderr: as records of the ``py.warnings`` logger they are rendered like the rest.
    logging.captureWarnings(True)
    _log_uncaught_exceptions()


class _RedactingRenderer:
    """A renderer whose lines have their secrets masked.

    Args:
        renderer: the structlog renderer that makes the line (console or JSON).
        redactor: what masks the secrets in it.
    """

    def __init__(self, renderer: Processor, redactor: Redactor) -> None:
        self._renderer = renderer
        self._redactor = redactor

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        line = self._renderer(logger, method_name, event_dict)
        assert isinstance(line, str)
        return self._redactor.redact(line)


def _route_standard_library(
    renderer: _RedactingRenderer, shared: list[Processor], level: int
) -> None:
    """One handler on the root logger, rendering records as structlog's lines are rendered.

    Libraries' loggers propagate to it; uvicorn's do too when it is given ``log_config=None``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _strip_message],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)


def _strip_message(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # Some libraries end their messages with a newline (uvicorn's "Exception in ASGI
    # application\n"), which would split a console line.
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = event.rstrip()
    return event_dict


def _log_uncaught_exceptions() -> None:
    """An exception nothing caught is logged like any other, not printed by Python."""
    log = structlog.get_logger("uncaught")

    def log_uncaught(
        error_type: type[BaseException],
        error: BaseException,
        error_traceback: TracebackType | None,
    ) -> None:
        log.critical("process.uncaught_exception", exc_info=(error_type, error, error_traceback))

    def log_uncaught_in_thread(arguments: threading.ExceptHookArgs) -> None:
        if arguments.exc_value is None or arguments.exc_type is SystemExit:
            return  # as Python's own hook: a thread may end itself with SystemExit
        log.critical(
            "thread.uncaught_exception",
            thread=getattr(arguments.thread, "name", None),
            exc_info=(arguments.exc_type, arguments.exc_value, arguments.exc_traceback),
        )

    sys.excepthook = log_uncaught
    threading.excepthook = log_uncaught_in_thread
