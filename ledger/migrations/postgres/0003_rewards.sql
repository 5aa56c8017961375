-- Rewards (see migrations/sqlite). Token amounts are decimal strings: they
-- are 18-decimal base units and outgrow BIGINT.
CREATE TABLE payout_addresses (
    node_id       TEXT   COLLATE "C" PRIMARY KEY,
    address       TEXT   COLLATE "C" NOT NULL,
    signature     TEXT   COLLATE "C" NOT NULL,
    registered_at BIGINT NOT NULL
);

CREATE TABLE epochs (
    epoch            BIGINT PRIMARY KEY,
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL,
    reward_per_gib   TEXT   COLLATE "C" NOT NULL,
    total_bytes      BIGINT NOT NULL,
    unassigned_bytes BIGINT NOT NULL,
    total_amount     TEXT   COLLATE "C" NOT NULL,
    merkle_root      TEXT   COLLATE "C",
    closed_at        BIGINT NOT NULL
);

CREATE TABLE epoch_payouts (
    epoch   BIGINT NOT NULL,
    address TEXT   COLLATE "C" NOT NULL,
    bytes   BIGINT NOT NULL,
    amount  TEXT   COLLATE "C" NOT NULL,
    proof   TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (epoch, address)
);
