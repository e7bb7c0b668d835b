-- Which partition's batch wrote an outbox row (ADR 15).
--
-- An orchestrator service of several processes shares the partitions out among them; each
-- process's sweeper takes only the rows its own partitions wrote (and it skips those it is
-- still publishing), so no process publishes a second copy of a batch that another is still
-- publishing. Rows written outside a partition (the client's starts) have no partition; the
-- process that owns partition 0 sweeps them.
ALTER TABLE outbox ADD COLUMN partition smallint;
