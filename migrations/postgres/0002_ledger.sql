-- The buyer's ledger on PostgreSQL, shared by every instance pointed at the database: with
-- `database_url` set, instances on any number of hosts that name one wallet share its budget,
-- its credentials and (for the embedded wallet) its account. The same tables as the SQLite
-- ledger (migrations/sqlite), in PostgreSQL's types. Money is msat; times unix seconds; hashes,
-- preimages and ids lower-case hex.

-- Every payment made or requested, both directions. An outgoing payment is written as
-- 'pending' before the wallet is asked to pay: that row is the budget reservation
-- (reserved_msat = amount + max fee), counted until it is resolved.
CREATE TABLE payments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet        TEXT   NOT NULL,
    direction     TEXT   NOT NULL CHECK (direction IN ('out', 'in')),
    status        TEXT   NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    payment_hash  TEXT   NOT NULL,
    bolt11        TEXT   NOT NULL,
    amount_msat   BIGINT NOT NULL CHECK (amount_msat >= 0),
    max_fee_msat  BIGINT NOT NULL DEFAULT 0 CHECK (max_fee_msat >= 0),
    fee_msat      BIGINT NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
    reserved_msat BIGINT NOT NULL DEFAULT 0 CHECK (reserved_msat >= 0),
    preimage      TEXT,
    description   TEXT,
    url           TEXT,
    host          TEXT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    settled_at    BIGINT,
    -- What an outgoing L402 payment buys (JSON), so a credential paid for survives a crash.
    credential    TEXT
);
-- At most one live (pending or succeeded) payment per invoice and direction: never pay twice.
CREATE UNIQUE INDEX payments_live_hash ON payments (wallet, direction, payment_hash)
    WHERE status != 'failed';
CREATE INDEX payments_window ON payments (wallet, direction, created_at);
CREATE INDEX payments_pending ON payments (status) WHERE status = 'pending';

-- Every key a payment's payee is known by (see src/payee.rs).
CREATE TABLE payment_payees (
    payment_id BIGINT NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    wallet     TEXT   NOT NULL,
    payee_key  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (payment_id, payee_key)
);
CREATE INDEX payment_payees_key ON payment_payees (wallet, payee_key, created_at);

-- Sellers that took a payment and refused the credential it bought.
CREATE TABLE distrusted_payees (
    wallet       TEXT   NOT NULL,
    payee_key    TEXT   NOT NULL,
    until        BIGINT NOT NULL,
    origin       TEXT   NOT NULL,
    payment_hash TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (wallet, payee_key)
);

-- Credentials bought, reused for later requests to the same origin and path scope.
CREATE TABLE token_cache (
    wallet       TEXT   NOT NULL,
    origin       TEXT   NOT NULL,
    path_prefix  TEXT   NOT NULL,
    scheme       TEXT   NOT NULL,
    macaroon     TEXT   NOT NULL,
    preimage     TEXT   NOT NULL,
    payment_hash TEXT   NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    honoured_at  BIGINT,
    PRIMARY KEY (wallet, origin, path_prefix)
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT   NOT NULL, -- JSON
    updated_at BIGINT NOT NULL
);

-- The embedded wallet's books: test sats only, settled between wallets of one storage.
CREATE TABLE embedded_wallets (
    name              TEXT PRIMARY KEY,
    node_id           TEXT   NOT NULL UNIQUE,
    node_key          TEXT,
    balance_msat      BIGINT NOT NULL CHECK (balance_msat >= 0),
    demo_granted_msat BIGINT NOT NULL,
    deposited_msat    BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL
);

CREATE TABLE embedded_invoices (
    payment_hash TEXT PRIMARY KEY,
    wallet       TEXT   NOT NULL REFERENCES embedded_wallets (name),
    bolt11       TEXT   NOT NULL,
    preimage     TEXT   NOT NULL,
    amount_msat  BIGINT NOT NULL,
    description  TEXT,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    paid_by      TEXT REFERENCES embedded_wallets (name),
    paid_at      BIGINT
);
CREATE INDEX embedded_invoices_payer ON embedded_invoices (paid_by);
