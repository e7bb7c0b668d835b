-- Durable timers: Postgres is the truth, the delay cascade only the delivery.
-- A row exists from TimerCreated until the timer fires, is cancelled, or its instance ends.

CREATE TABLE timers (
    instance_id     text        NOT NULL,
    execution_id    text        NOT NULL,
    timer_id        integer     NOT NULL,
    fire_at         timestamptz NOT NULL,
    correlation_id  text        NOT NULL,
    -- last time the sweeper re-fired it (NULL: never); the sweeper waits a grace period
    -- before firing it again.
    swept_at        timestamptz,
    PRIMARY KEY (instance_id, execution_id, timer_id)
);

CREATE INDEX timers_fire_at ON timers (fire_at);
