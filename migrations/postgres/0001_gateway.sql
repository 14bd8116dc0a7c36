-- Shared state of gateway instances on PostgreSQL: root keys and terms of minted tokens, use
-- counters, free-tier counts and sales. Hashes and ids are lower-case hex; money is msat.

CREATE TABLE root_keys (
    key_id     TEXT PRIMARY KEY,
    root_key   BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE minted_tokens (
    token_id     TEXT PRIMARY KEY,
    key_id       TEXT   NOT NULL REFERENCES root_keys (key_id) ON DELETE CASCADE,
    wallet       TEXT   NOT NULL,
    payment_hash TEXT   NOT NULL,
    amount_msat  BIGINT NOT NULL,
    service      TEXT   NOT NULL,
    tier         BIGINT NOT NULL,
    capabilities TEXT   NOT NULL,
    valid_until  BIGINT,
    created_at   BIGINT NOT NULL,
    max_uses     BIGINT
);
CREATE INDEX minted_tokens_hash ON minted_tokens (payment_hash);

CREATE TABLE token_uses (
    token_id TEXT PRIMARY KEY,
    uses     BIGINT NOT NULL
);

CREATE TABLE free_tier (
    client TEXT   NOT NULL,
    route  TEXT   NOT NULL,
    day    BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (client, route, day)
);

CREATE TABLE sales (
    payment_hash TEXT PRIMARY KEY,
    token_id     TEXT   NOT NULL,
    service      TEXT   NOT NULL,
    amount_msat  BIGINT NOT NULL,
    sold_at      BIGINT NOT NULL
);
CREATE INDEX sales_time ON sales (sold_at);
