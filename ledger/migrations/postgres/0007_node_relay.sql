-- Which relay holds a node's connection (see migrations/sqlite).
ALTER TABLE nodes ADD COLUMN relay TEXT NOT NULL DEFAULT '';
