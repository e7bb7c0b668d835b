"""The event store: every statement on the tables the migrations create (``instances``,
``events``, ``outbox``, ``timers``, ``registered_functions``), for the client, the
orchestrator and the operations tools.

Helpers named ``*_txn`` run inside the caller's transaction; the others take a pool and are
their own. The package imports ``contracts``, ``durable.broker`` (the outbox holds its
messages) and third-party libraries only; the migrations stay in ``services/common``.

- ``database``: the pool and a transaction of its own; ``errors``: the store's errors and
  the classification of driver errors.
- ``columns``: JSON as text, and ``RowShape``/``Statement``, the typed builders that turn
  rows into the parallel arrays ``unnest`` takes.
- ``batch``: a handler batch's one statement (events, rows, outbox, timers).
- ``events``: reading streams; ``instances``: creating, locking and moving rows;
  ``queries``: status, lists, counts, purges; ``starts``: instances with their start
  messages; ``outbox``: the transactional outbox; ``timers``: durable timer rows;
  ``registered_functions``: what each deployment runs.
- For the operations tools: ``rows`` (whole rows, repaired), ``selection`` (which instances),
  ``records`` (rows as JSON lines, export and import), ``feed`` (events in commit order).
"""
