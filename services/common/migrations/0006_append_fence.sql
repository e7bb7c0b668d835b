-- The fence of a batch written in one statement (ADR 0011).
--
-- The orchestrator writes a batch of cached instances with one statement: append the events,
-- update each instance's row only where its last_seq is still the one the cache holds, queue
-- the outgoing messages. When another writer moved one of the rows first, fewer rows are
-- updated than expected; this function then fails the statement, so none of it is written,
-- and the orchestrator reloads the instances and decides again.
CREATE FUNCTION durable_fence(expected bigint, updated bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF updated <> expected THEN
        RAISE EXCEPTION 'instances moved by another writer: % of % rows at their expected seq',
            updated, expected
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN updated;
END
$$;
