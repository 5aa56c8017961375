-- Aggregates the admin dashboard reads, kept by the ledger writer in the
-- same transaction as the usage records they sum (so they can never
-- disagree with the ledger), and by epoch closing. They make the nodes table
-- one indexed query at any number of nodes instead of a scan of the ledger.

-- Whether a node is connected now: set on connect, cleared on disconnect and
-- for every node when the relay starts.
ALTER TABLE nodes ADD COLUMN online INTEGER NOT NULL DEFAULT 0;

-- Per node, all time. Bytes count `ok` jobs only (what earns); `jobs_failed`
-- counts `node_failed` and `timeout`, the outcomes that are the node's fault.
-- `epoch_bytes` are the `ok` bytes of aligned epoch `epoch_index`
-- (finish time / epoch length). `earned` is what closed epochs paid this
-- node's bytes, in base units, zero-padded to 39 digits so that it sorts as
-- text (u128 outgrows BIGINT).
CREATE TABLE node_totals (
    node_id     TEXT   PRIMARY KEY,
    bytes_up    BIGINT NOT NULL DEFAULT 0,
    bytes_down  BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    jobs_other  BIGINT NOT NULL DEFAULT 0,
    epoch_index BIGINT NOT NULL DEFAULT 0,
    epoch_bytes BIGINT NOT NULL DEFAULT 0,
    earned      TEXT   NOT NULL DEFAULT '000000000000000000000000000000000000000',
    last_job_at BIGINT NOT NULL DEFAULT 0
);

-- Per node per hour (Unix ms / 3600000): the per-node chart.
CREATE TABLE node_hours (
    node_id     TEXT   NOT NULL,
    hour        BIGINT NOT NULL,
    bytes       BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
);

-- Whole relay per hour: the overview chart and success rate.
CREATE TABLE hour_totals (
    hour        BIGINT PRIMARY KEY,
    bytes       BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    jobs_other  BIGINT NOT NULL DEFAULT 0
);

-- Per customer per hour: top customers.
CREATE TABLE customer_hours (
    customer_id BIGINT NOT NULL,
    hour        BIGINT NOT NULL,
    requests    BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, hour)
);
CREATE INDEX customer_hours_hour ON customer_hours (hour);

-- What each closed epoch paid each node (the per-node earnings export).
CREATE TABLE epoch_nodes (
    epoch   BIGINT NOT NULL,
    node_id TEXT   NOT NULL,
    address TEXT   NOT NULL,
    bytes   BIGINT NOT NULL,
    amount  TEXT   NOT NULL,
    PRIMARY KEY (epoch, node_id)
);

-- Existing ledgers: the all-time figures from the records already there.
INSERT INTO node_totals (node_id, bytes_up, bytes_down, jobs_ok, jobs_failed, jobs_other, last_job_at)
SELECT node_id,
       SUM(CASE WHEN outcome = 'ok' THEN bytes_up ELSE 0 END),
       SUM(CASE WHEN outcome = 'ok' THEN bytes_down ELSE 0 END),
       SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END),
       SUM(CASE WHEN outcome IN ('node_failed', 'timeout') THEN 1 ELSE 0 END),
       SUM(CASE WHEN outcome IN ('cancelled', 'refused') THEN 1 ELSE 0 END),
       MAX(finished_at)
FROM usage_records GROUP BY node_id;

CREATE INDEX nodes_online ON nodes (online, last_seen);
