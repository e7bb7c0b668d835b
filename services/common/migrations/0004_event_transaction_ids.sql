-- The transaction that wrote each event, so readers can follow the store in a stable order
-- without skipping events whose transactions commit late (durable-ops republish).
--
-- global_position is drawn at insert time, but transactions commit in any order: a reader that
-- has seen position 12 may later see 11 appear. A transaction id below
-- pg_snapshot_xmin(pg_current_snapshot()) belongs to a transaction that has finished, and no
-- transaction can still write with an id that low; reading only below that watermark, in
-- (transaction_id, global_position) order, never skips an event.
--
-- Rows written before this migration all committed before it: they read as transaction 0 (a
-- constant default is stored in the catalogue, so adding the column does not rewrite the
-- table), ahead of every later transaction, in position order. New rows get their writer's
-- (top-level) transaction id.
ALTER TABLE events ADD COLUMN transaction_id xid8 NOT NULL DEFAULT '0';
ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id();

CREATE INDEX events_transaction_order ON events (transaction_id, global_position);
