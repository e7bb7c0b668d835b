"""The orchestrator service's entry point: ``python -m services.orchestrator``, configured with
``DF_*`` environment variables.

With ``DF_ORCHESTRATOR_PROCESSES`` above 1 this process only supervises copies of itself
(``processes``); it reads its settings and starts them, and never imports the service
(``service``), so it stays small.
"""

from __future__ import annotations

import os
import sys

import structlog

from contracts import limits
from services.common.logging import configure_logging
from services.orchestrator.processes import (
    PROCESS_INDEX_VARIABLE,
    die_with_supervisor,
    supervise,
)
from services.orchestrator.settings import OrchestratorSettings


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging("orchestrator", settings)
    limits.configure(settings.limits)
    index_text = os.environ.get(PROCESS_INDEX_VARIABLE)
    processes = settings.processes
    if index_text is None and processes > 1:
        sys.exit(supervise(processes))
    index = None if index_text is None else int(index_text)
    if index is not None:
        die_with_supervisor()
        structlog.contextvars.bind_contextvars(process=index)
    # Imported here, not above: a supervisor never loads the service's libraries.
    from services.common.tracing import start_tracing
    from services.orchestrator.service import serve

    start_tracing("orchestrator")

    serve(settings)


if __name__ == "__main__":
    main()
