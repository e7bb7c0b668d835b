"""structlog set-up: console lines for people, JSON lines for pipelines.

Every line carries the service name; handlers bind ``instance_id``, ``message_id`` and
``correlation_id`` (``structlog.contextvars`` or ``log.bind``) where they are known.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(service: str, *, log_format: str = "console", level: str = "info") -> None:
    """Configure structlog and the standard library's logging for one service process."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if log_format == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aio-pika, asyncpg, uvicorn) log through the standard library.
    logging.basicConfig(level=max(numeric_level, logging.WARNING), stream=sys.stderr)
