-- Entity functions are recorded beside orchestrators and activities (ADR 38), so that the
-- client refuses to signal an entity name no deployment runs (404), as it refuses to start
-- an unknown orchestrator, rather than accepting a signal nothing will ever process.
-- Their names are lower-cased, as entity ids spell them.
ALTER TABLE registered_functions DROP CONSTRAINT registered_functions_kind_check;
ALTER TABLE registered_functions
    ADD CONSTRAINT registered_functions_kind_check
    CHECK (kind IN ('orchestrator', 'activity', 'entity'));
