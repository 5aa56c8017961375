-- Which relay holds a node's connection (its receipt-signing key, hex):
-- relays sharing one database mark offline only the nodes they held, at
-- start and when another relay of the cluster is gone. Empty for rows
-- written before this column.
ALTER TABLE nodes ADD COLUMN relay TEXT NOT NULL DEFAULT '';
