-- Orchestrator members and their partition leases (ADR 27).
--
-- Every orchestrator process is a member of its deployment (its namespace): it heartbeats
-- here and holds leases on a fair share of the partitions. A lease expires unless renewed;
-- its epoch grows on every change of owner, and every write a partition's owner makes checks,
-- in its own transaction, that it still holds the partition at that epoch
-- (durable_lease_fence), so a process that lost its lease (a pause, a partition of the
-- network) commits nothing.

CREATE TABLE orchestrator_members (
    namespace     text        NOT NULL,
    member_id     text        NOT NULL,
    host          text        NOT NULL,
    pid           integer     NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, member_id)
);

CREATE TABLE partition_leases (
    namespace     text        NOT NULL,
    partition     smallint    NOT NULL,
    owner         text,                 -- member_id; NULL while free
    epoch         bigint      NOT NULL DEFAULT 0,
    acquired_at   timestamptz,
    expires_at    timestamptz,
    PRIMARY KEY (namespace, partition)
);

-- Fails the transaction unless `member` holds the partition at `held_epoch`. The row lock
-- makes a change of owner wait for the writes in flight: the next owner reads what the last
-- one committed, and a write can never commit after its lease moved on. FOR KEY SHARE, the
-- weakest lock: a renewal (an UPDATE of expires_at) does not wait for it, while a change of
-- owner locks the row FOR UPDATE first (durable/store/leases.py), which does.
CREATE FUNCTION durable_lease_fence(ns text, p smallint, member text, held_epoch bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM partition_leases
    WHERE namespace = ns AND partition = p AND owner = member AND epoch = held_epoch
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'partition % of % is no longer held by % at epoch %',
            p, ns, member, held_epoch
            USING ERRCODE = 'DF001';
    END IF;
    RETURN true;
END
$$;
