-- Indexes for listing instances by custom status and by instance id prefix.

-- customStatus filters are jsonb containment (custom_status @> filter); jsonb_path_ops serves
-- exactly that operator, and is smaller than the default jsonb_ops.
CREATE INDEX instances_custom_status ON instances USING gin (custom_status jsonb_path_ops);

-- instanceIdPrefix filters are LIKE 'prefix%'; the primary key's index serves them only under
-- the C collation, this one under any.
CREATE INDEX instances_instance_id_pattern ON instances (instance_id text_pattern_ops);
