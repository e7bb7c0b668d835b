-- Event payloads keep the exact JSON text they were written with.
--
-- jsonb re-orders object keys (shortest first, then bytewise). An orchestrator that iterates
-- over a dict from its input, an activity result or an event saw one key order when the value
-- came from the message, and another when its history was replayed from the store: a
-- replay that diverges from the first run. json keeps the text, so a replay sees the same
-- order the first run saw. (Payloads written before this migration keep jsonb's order.)
ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json;
