-- The app version each instance started under (docs/adr/0034-orchestration-versions.md).
--
-- The history's ExecutionStarted holds it (what replay and the version gate read); the row
-- repeats it for the read side: the HTTP API's status and list, the CLI, the replay check.
-- Instances started before this column have none, as their histories have none.
ALTER TABLE instances ADD COLUMN version text;
