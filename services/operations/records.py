"""The JSON shapes of stored rows, built by Postgres so numbers and JSON values stay exactly as
stored (no float round trip): one line per instance row, event and timer row.

The same event object is what ``show --json`` prints, what ``export`` writes and what
``republish`` sends as a message body.
"""

from __future__ import annotations

FORMAT_VERSION = 1


def _time(column: str) -> str:
    """A timestamptz as ISO 8601 UTC with microseconds and ``Z``, whatever the session zone."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


EVENT_OBJECT = f"""json_build_object(
    'kind', 'event',
    'instance_id', e.instance_id,
    'seq', e.seq,
    'execution_id', e.execution_id,
    'event_type', e.event_type,
    'global_position', e.global_position,
    'message_id', e.message_id,
    'recorded_at', {_time("e.recorded_at")},
    'payload', e.payload
)"""
"""An ``events e`` row as JSON."""

INSTANCE_OBJECT = f"""json_build_object(
    'kind', 'instance',
    'instance_id', i.instance_id,
    'name', i.name,
    'execution_id', i.execution_id,
    'status', i.status,
    'input', i.input,
    'output', i.output,
    'custom_status', i.custom_status,
    'failure', i.failure,
    'correlation_id', i.correlation_id,
    'parent_instance_id', i.parent_instance_id,
    'created_at', {_time("i.created_at")},
    'updated_at', {_time("i.updated_at")},
    'completed_at', {_time("i.completed_at")},
    'last_seq', i.last_seq,
    'execution_start_seq', i.execution_start_seq
)"""
"""An ``instances i`` row as JSON."""

TIMER_OBJECT = f"""json_build_object(
    'kind', 'timer',
    'instance_id', t.instance_id,
    'execution_id', t.execution_id,
    'timer_id', t.timer_id,
    'fire_at', {_time("t.fire_at")},
    'correlation_id', t.correlation_id,
    'swept_at', {_time("t.swept_at")}
)"""
"""A ``timers t`` row as JSON."""

# Reading lines back: Postgres parses each line as ``json``, which keeps the text of every
# value, so an event's payload is stored with exactly the text it was exported with (key order
# and numbers included). JSON null in a jsonb column of ``instances`` is SQL NULL (the services
# never store a JSON null there).


def _jsonb(field: str) -> str:
    return f"CASE WHEN json_typeof(l->'{field}') = 'null' THEN NULL ELSE (l->'{field}')::jsonb END"


INSERT_INSTANCES = f"""
INSERT INTO instances (instance_id, name, execution_id, status, input, output, custom_status,
                       failure, correlation_id, parent_instance_id, created_at, updated_at,
                       completed_at, last_seq, execution_start_seq)
SELECT l->>'instance_id', l->>'name', l->>'execution_id', l->>'status',
       {_jsonb("input")}, {_jsonb("output")}, {_jsonb("custom_status")}, {_jsonb("failure")},
       l->>'correlation_id', l->>'parent_instance_id', (l->>'created_at')::timestamptz,
       (l->>'updated_at')::timestamptz, (l->>'completed_at')::timestamptz,
       (l->>'last_seq')::bigint, (l->>'execution_start_seq')::bigint
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""

INSERT_EVENTS = """
INSERT INTO events (instance_id, seq, execution_id, event_type, payload, message_id,
                    recorded_at, global_position)
OVERRIDING SYSTEM VALUE
SELECT l->>'instance_id', (l->>'seq')::bigint, l->>'execution_id', l->>'event_type',
       l->'payload', (l->>'message_id')::uuid, (l->>'recorded_at')::timestamptz,
       (l->>'global_position')::bigint
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""

INSERT_TIMERS = """
INSERT INTO timers (instance_id, execution_id, timer_id, fire_at, correlation_id, swept_at)
SELECT l->>'instance_id', l->>'execution_id', (l->>'timer_id')::integer,
       (l->>'fire_at')::timestamptz, l->>'correlation_id', (l->>'swept_at')::timestamptz
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""
