-- One row per job attempt that reached a node (see migrations/sqlite).
CREATE TABLE usage_records (
    job_id      TEXT    COLLATE "C" PRIMARY KEY,
    node_id     TEXT    COLLATE "C" NOT NULL,
    customer_id BIGINT  NOT NULL,
    bytes_up    BIGINT  NOT NULL,
    bytes_down  BIGINT  NOT NULL,
    outcome     TEXT    COLLATE "C" NOT NULL,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT  NOT NULL,
    day         TEXT    COLLATE "C" NOT NULL
);

CREATE INDEX usage_records_node ON usage_records (node_id, finished_at);
CREATE INDEX usage_records_customer_day ON usage_records (customer_id, day);
