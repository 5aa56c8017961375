-- Customers and known nodes.
-- Portable SQL: the same statements run on SQLite and PostgreSQL, except the
-- surrogate key, which a PostgreSQL migration writes as GENERATED ... AS IDENTITY.
-- Times are Unix milliseconds in BIGINT.

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE nodes (
    node_id     TEXT    PRIMARY KEY,
    public_key  TEXT    NOT NULL,
    client_kind TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    first_seen  BIGINT  NOT NULL,
    last_seen   BIGINT  NOT NULL,
    last_ip     TEXT,
    country     TEXT
);
