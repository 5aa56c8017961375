-- Whether a job's node was earning when it ran, and whether a node earns
-- now (see migrations/sqlite).
ALTER TABLE usage_records ADD COLUMN earning BIGINT NOT NULL DEFAULT 1;
ALTER TABLE nodes ADD COLUMN earning BIGINT NOT NULL DEFAULT 1;
