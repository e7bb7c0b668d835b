"""durable-ops: operators' tools over the event store and the broker.

Show, export and import event streams, check stored histories against the current orchestrator
code, rebuild the ``instances`` read model, re-publish events for downstream consumers, and
handle dead letters. Read-only unless a command's name says it writes (``import``,
``rebuild-projections --apply``, ``republish``, ``dlq redrive``, ``dlq discard``).
"""
