-- Whether a job's node was earning when it ran: at most a configured number
-- of nodes per IP address earn; the others serve unpaid. Closing an epoch
-- pays only earning records (the rest count as unassigned bytes).
ALTER TABLE usage_records ADD COLUMN earning INTEGER NOT NULL DEFAULT 1;
-- Whether the node earns now (for the dashboard).
ALTER TABLE nodes ADD COLUMN earning INTEGER NOT NULL DEFAULT 1;
