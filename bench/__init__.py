"""The benchmark suite: our runtime against DBOS and Celery on the same Postgres and RabbitMQ.

``make bench`` (full) or ``make bench-quick``; see docs/performance.md.
"""
