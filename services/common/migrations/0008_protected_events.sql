-- The events of each orchestrator that only a management key may raise over HTTP (ADR 0020).
--
-- A start key may raise events, but an event that decides something (a person's sign-off)
-- must not be open to whoever holds one. The orchestrator declares these
-- events (@app.orchestrator(protected_events=[...])); the orchestrator service records them
-- here with the orchestrator's name, where the client service, which does not load the
-- function apps, reads them. Names are stored as declared and compared case-insensitively,
-- as event names are matched. Rows written by services from before this column protect
-- nothing, as they did.
ALTER TABLE registered_functions
    ADD COLUMN protected_events text[] NOT NULL DEFAULT '{}';
