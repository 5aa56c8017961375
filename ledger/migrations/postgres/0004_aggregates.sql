-- The dashboard's aggregates (see migrations/sqlite for what each holds).
ALTER TABLE nodes ADD COLUMN online BIGINT NOT NULL DEFAULT 0;

CREATE TABLE node_totals (
    node_id     TEXT   COLLATE "C" PRIMARY KEY,
    bytes_up    BIGINT NOT NULL DEFAULT 0,
    bytes_down  BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    jobs_other  BIGINT NOT NULL DEFAULT 0,
    epoch_index BIGINT NOT NULL DEFAULT 0,
    epoch_bytes BIGINT NOT NULL DEFAULT 0,
    earned      TEXT   COLLATE "C" NOT NULL DEFAULT '000000000000000000000000000000000000000',
    last_job_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE node_hours (
    node_id     TEXT   COLLATE "C" NOT NULL,
    hour        BIGINT NOT NULL,
    bytes       BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
);

CREATE TABLE hour_totals (
    hour        BIGINT PRIMARY KEY,
    bytes       BIGINT NOT NULL DEFAULT 0,
    jobs_ok     BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    jobs_other  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE customer_hours (
    customer_id BIGINT NOT NULL,
    hour        BIGINT NOT NULL,
    requests    BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, hour)
);
CREATE INDEX customer_hours_hour ON customer_hours (hour);

CREATE TABLE epoch_nodes (
    epoch   BIGINT NOT NULL,
    node_id TEXT   COLLATE "C" NOT NULL,
    address TEXT   COLLATE "C" NOT NULL,
    bytes   BIGINT NOT NULL,
    amount  TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (epoch, node_id)
);

CREATE INDEX nodes_online ON nodes (online, last_seen);
