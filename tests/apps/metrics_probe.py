"""A function module that counts its imports in a Prometheus counter: a supervised
orchestrator's ``/metrics`` then shows one count per process, summed in one scrape.

Loaded only by the health tests (``tests/e2e/test_health.py``), next to the usual modules.
"""

from __future__ import annotations

from prometheus_client import Counter

from durable import FunctionApp

app = FunctionApp()

IMPORTS = Counter("df_test_function_module_imports", "Processes that loaded this module.")
IMPORTS.inc()
