-- What several gateway instances must agree on (the same tables exist in PostgreSQL, see
-- migrations/postgres): token use counters, free-tier counts and sales.

-- A token may be limited to a number of uses (the replay guard of N-use tokens).
ALTER TABLE minted_tokens ADD COLUMN max_uses INTEGER;

CREATE TABLE token_uses (
    token_id TEXT PRIMARY KEY,
    uses     INTEGER NOT NULL
);

-- Free requests per client network (IPv4 /24, IPv6 /48) per route per UTC day.
CREATE TABLE free_tier (
    client TEXT    NOT NULL,
    route  TEXT    NOT NULL,
    day    INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (client, route, day)
);

-- A sale: a token's payment, counted once, when its credential is first accepted.
CREATE TABLE sales (
    payment_hash TEXT PRIMARY KEY,
    token_id     TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    amount_msat  INTEGER NOT NULL,
    sold_at      INTEGER NOT NULL
);
CREATE INDEX sales_time ON sales (sold_at);
