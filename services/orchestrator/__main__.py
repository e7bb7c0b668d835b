"""The orchestrator service's entry point: ``python -m services.orchestrator``, configured with
``DF_*`` environment variables.

With ``DF_ORCHESTRATOR_PROCESSES`` above 1 this process only supervises copies of itself
(``processes``); it reads its settings and starts them, and never imports the service
(``service``), so it stays small.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structlog

from contracts import limits
from services.common.logging import configure_logging
from services.common.observability_port import PortInUseError
from services.common.readiness import report_path
from services.orchestrator.processes import (
    METRICS_DIRECTORY_VARIABLE,
    PROCESS_INDEX_VARIABLE,
    die_with_supervisor,
    supervise,
)
from services.orchestrator.settings import OrchestratorSettings

log = structlog.get_logger("services.orchestrator")


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging("orchestrator", settings)
    limits.configure(settings.limits)
    index_text = os.environ.get(PROCESS_INDEX_VARIABLE)
    processes = settings.processes
    port = settings.orchestrator_observability_port
    address = None if port is None else (settings.observability_host, port)
    if index_text is None and processes > 1:
        try:
            sys.exit(supervise(processes, address))
        except PortInUseError as error:
            log.error("service.cannot_start", error=error.strerror)
            sys.exit(2)
    index = None if index_text is None else int(index_text)
    readiness_report = None
    if index is not None:
        die_with_supervisor()
        structlog.contextvars.bind_contextvars(process=index)
        # The supervisor serves the port; this copy tells it whether it is ready.
        address = None
        readiness_report = report_path(Path(os.environ[METRICS_DIRECTORY_VARIABLE]), index)
    # Imported here, not above: a supervisor never loads the service's libraries.
    from services.common.tracing import start_tracing
    from services.orchestrator.service import serve

    start_tracing("orchestrator")
    serve(settings, address, readiness_report)


if __name__ == "__main__":
    main()
