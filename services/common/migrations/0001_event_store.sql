-- The event store: instances (read model), events (system of record), outbox, registered functions.

CREATE TABLE instances (
    instance_id          text        PRIMARY KEY,
    name                 text        NOT NULL,
    execution_id         text        NOT NULL,
    status               text        NOT NULL,
    input                jsonb,
    output               jsonb,
    custom_status        jsonb,
    failure              jsonb,
    correlation_id       text        NOT NULL,
    parent_instance_id   text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    completed_at         timestamptz,
    -- seq of the last event of this instance; the next append must use last_seq + 1.
    last_seq             bigint      NOT NULL DEFAULT 0,
    -- seq of the current execution's first event (after continue-as-new, a later one).
    execution_start_seq  bigint      NOT NULL DEFAULT 1
);

CREATE INDEX instances_created_at ON instances (created_at);
CREATE INDEX instances_status_created_at ON instances (status, created_at);
CREATE INDEX instances_name_created_at ON instances (name, created_at);

CREATE TABLE events (
    instance_id      text        NOT NULL,
    seq              bigint      NOT NULL,
    execution_id     text        NOT NULL,
    event_type       text        NOT NULL,
    payload          jsonb       NOT NULL,
    -- the message that carried an inbound event (NULL for events the orchestrator wrote).
    message_id       uuid,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    global_position  bigint      GENERATED ALWAYS AS IDENTITY,
    -- The optimistic-concurrency fence: two writers appending the same seq cannot both commit.
    PRIMARY KEY (instance_id, seq)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);

CREATE TABLE outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exchange        text        NOT NULL,
    routing_key     text        NOT NULL,
    message_id      uuid        NOT NULL,
    correlation_id  text        NOT NULL,
    message_type    text        NOT NULL,
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_created_at ON outbox (created_at);

-- What each deployment registered, so clients can refuse to start an unknown orchestrator.
CREATE TABLE registered_functions (
    kind        text        NOT NULL CHECK (kind IN ('orchestrator', 'activity')),
    name        text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
