-- The `Payment` auth scheme (MPP, method lightning) on PostgreSQL, shared by every instance:
-- the HMAC secrets, the spent charges, the seller's sessions and the buyer's. The same tables
-- as migrations/sqlite/0008, in PostgreSQL's types. Money is msat; times unix seconds; hashes
-- and preimages lower-case hex.

-- The HMAC secrets of challenge ids, one per epoch: challenges are minted under the current
-- epoch's and verified under it and the previous one's (rotation with overlap). Created by the
-- first instance that needs it; 32 random bytes, hex.
CREATE TABLE mpp_secrets (
    epoch      BIGINT PRIMARY KEY,
    secret     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

-- Charge credentials accepted: a payment hash pays for one request, on any instance.
CREATE TABLE mpp_consumed_charges (
    payment_hash TEXT PRIMARY KEY,
    challenge_id TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    consumed_at  BIGINT  NOT NULL
);

-- Sessions the seller opened: a deposit, what was spent of it, and the refund of the rest to
-- the buyer's amountless return invoice, paid once (refund_status 'pending' until it is).
CREATE TABLE mpp_sessions (
    session_id     TEXT PRIMARY KEY, -- the deposit's payment hash
    wallet         TEXT    NOT NULL,
    service        TEXT    NOT NULL,
    deposit_msat   BIGINT  NOT NULL CHECK (deposit_msat >= 0),
    spent_msat     BIGINT  NOT NULL CHECK (spent_msat >= 0),
    return_invoice TEXT    NOT NULL,
    idle_secs      BIGINT  NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    refund_msat    BIGINT,
    refund_status  TEXT CHECK (refund_status IN ('pending', 'succeeded', 'failed', 'skipped')),
    refund_error   TEXT,
    opened_at      BIGINT  NOT NULL,
    last_used_at   BIGINT  NOT NULL,
    closed_at      BIGINT,
    CHECK (spent_msat <= deposit_msat)
);
CREATE INDEX mpp_sessions_refunds ON mpp_sessions (refund_status) WHERE refund_status = 'pending';
CREATE INDEX mpp_sessions_open ON mpp_sessions (status, last_used_at);

-- Payments credited to a session (its deposit and top-ups): each to one session, once.
CREATE TABLE mpp_session_credits (
    payment_hash TEXT PRIMARY KEY,
    session_id   TEXT    NOT NULL,
    amount_msat  BIGINT  NOT NULL,
    credited_at  BIGINT  NOT NULL
);

-- The buyer's sessions: the deposit preimage is the bearer secret (kept like a cached
-- credential's), the last session challenge is echoed, the return invoice takes the refund.
CREATE TABLE mpp_buyer_sessions (
    wallet         TEXT    NOT NULL,
    session_id     TEXT    NOT NULL, -- the deposit's payment hash
    origin         TEXT    NOT NULL,
    realm          TEXT    NOT NULL,
    url            TEXT    NOT NULL, -- the last URL used, where a close is sent
    preimage       TEXT    NOT NULL,
    challenge      TEXT    NOT NULL, -- JSON of the last session challenge seen
    deposit_msat   BIGINT  NOT NULL, -- deposit and top-ups paid
    price_msat     BIGINT  NOT NULL, -- per request, as the challenge says
    requests       BIGINT  NOT NULL,
    return_hash    TEXT    NOT NULL,
    return_invoice TEXT    NOT NULL,
    idle_secs      BIGINT  NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('opening', 'open', 'closed', 'failed')),
    refund_msat    BIGINT,
    refund_status  TEXT,
    opened_at      BIGINT  NOT NULL,
    last_used_at   BIGINT  NOT NULL,
    closed_at      BIGINT,
    PRIMARY KEY (wallet, session_id)
);
CREATE INDEX mpp_buyer_sessions_open ON mpp_buyer_sessions (wallet, origin, status);
