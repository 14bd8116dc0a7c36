-- The spend ledger. Money is integer millisatoshis; times are unix seconds; hashes, preimages
-- and ids are lower-case hex.

-- Every payment made or requested, both directions. An outgoing payment is written as 'pending'
-- *before* the wallet is asked to pay: that row is the budget reservation (reserved_msat =
-- amount + max fee) and stays counted until it is resolved to 'succeeded' or 'failed'.
CREATE TABLE payments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet        TEXT    NOT NULL,
    direction     TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    payment_hash  TEXT    NOT NULL,
    bolt11        TEXT    NOT NULL,
    amount_msat   INTEGER NOT NULL CHECK (amount_msat >= 0),
    max_fee_msat  INTEGER NOT NULL DEFAULT 0 CHECK (max_fee_msat >= 0),
    fee_msat      INTEGER NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
    reserved_msat INTEGER NOT NULL DEFAULT 0 CHECK (reserved_msat >= 0),
    preimage      TEXT,
    description   TEXT,
    url           TEXT,
    host          TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    settled_at    INTEGER
);
-- At most one live (pending or succeeded) payment per invoice and direction: never pay twice.
CREATE UNIQUE INDEX payments_live_hash ON payments (wallet, direction, payment_hash)
    WHERE status != 'failed';
CREATE INDEX payments_window ON payments (wallet, direction, created_at);
CREATE INDEX payments_pending ON payments (status) WHERE status = 'pending';

-- Credentials bought, reused for later requests to the same origin and path scope.
CREATE TABLE token_cache (
    wallet       TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    path_prefix  TEXT    NOT NULL,
    scheme       TEXT    NOT NULL,
    macaroon     TEXT    NOT NULL, -- standard base64
    preimage     TEXT    NOT NULL,
    payment_hash TEXT    NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (wallet, origin, path_prefix)
);

-- One random root key per minted token, named by sha256(identifier) as in Aperture.
-- Deleting a row revokes the token.
CREATE TABLE root_keys (
    key_id     TEXT PRIMARY KEY,
    root_key   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Tokens this data dir minted, for showing what was sold and what was paid.
CREATE TABLE minted_tokens (
    token_id     TEXT PRIMARY KEY,
    key_id       TEXT    NOT NULL REFERENCES root_keys (key_id) ON DELETE CASCADE,
    wallet       TEXT    NOT NULL,
    payment_hash TEXT    NOT NULL,
    amount_msat  INTEGER NOT NULL,
    service      TEXT    NOT NULL,
    tier         INTEGER NOT NULL,
    capabilities TEXT    NOT NULL,
    valid_until  INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX minted_tokens_hash ON minted_tokens (payment_hash);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT    NOT NULL, -- JSON
    updated_at INTEGER NOT NULL
);

-- The embedded wallet's own books: test sats only, settled between wallets of one data dir.
CREATE TABLE embedded_wallets (
    name              TEXT PRIMARY KEY,
    node_id           TEXT    NOT NULL UNIQUE,
    balance_msat      INTEGER NOT NULL CHECK (balance_msat >= 0),
    demo_granted_msat INTEGER NOT NULL,
    deposited_msat    INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);

CREATE TABLE embedded_invoices (
    payment_hash TEXT PRIMARY KEY,
    wallet       TEXT    NOT NULL REFERENCES embedded_wallets (name),
    bolt11       TEXT    NOT NULL,
    preimage     TEXT    NOT NULL,
    amount_msat  INTEGER NOT NULL,
    description  TEXT,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    paid_by      TEXT REFERENCES embedded_wallets (name),
    paid_at      INTEGER
);
CREATE INDEX embedded_invoices_payer ON embedded_invoices (paid_by);
