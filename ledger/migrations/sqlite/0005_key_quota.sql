-- A customer's own monthly byte quota; NULL takes the relay's default
-- (`monthly_quota_bytes`), 0 means unlimited.
ALTER TABLE customers ADD COLUMN monthly_quota_bytes BIGINT;
