-- Rewards: where each node's rewards go, closed epochs, and each epoch's
-- payouts with their Merkle proofs. Token amounts are decimal strings: they
-- are 18-decimal base units and outgrow BIGINT.
CREATE TABLE payout_addresses (
    node_id       TEXT   PRIMARY KEY,
    address       TEXT   NOT NULL,
    signature     TEXT   NOT NULL,
    registered_at BIGINT NOT NULL
);

CREATE TABLE epochs (
    epoch            BIGINT PRIMARY KEY,
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL,
    reward_per_gib   TEXT   NOT NULL,
    total_bytes      BIGINT NOT NULL,
    unassigned_bytes BIGINT NOT NULL,
    total_amount     TEXT   NOT NULL,
    merkle_root      TEXT,
    closed_at        BIGINT NOT NULL
);

CREATE TABLE epoch_payouts (
    epoch   BIGINT NOT NULL,
    address TEXT   NOT NULL,
    bytes   BIGINT NOT NULL,
    amount  TEXT   NOT NULL,
    proof   TEXT   NOT NULL,
    PRIMARY KEY (epoch, address)
);
