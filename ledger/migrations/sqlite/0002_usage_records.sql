-- One row per job attempt that reached a node: the ledger that rewards are
-- computed from. job_id is the primary key, so a replayed record can never
-- count twice. `day` (UTC, YYYY-MM-DD) is computed by the relay so that
-- per-day queries stay portable SQL.
CREATE TABLE usage_records (
    job_id      TEXT    PRIMARY KEY,
    node_id     TEXT    NOT NULL,
    customer_id BIGINT  NOT NULL,
    bytes_up    BIGINT  NOT NULL,
    bytes_down  BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT  NOT NULL,
    day         TEXT    NOT NULL
);

CREATE INDEX usage_records_node ON usage_records (node_id, finished_at);
CREATE INDEX usage_records_customer_day ON usage_records (customer_id, day);
