-- Payments waiting for a human (see src/approval/): the approval policy asked for one before the
-- money moves. A row is opened 'pending' with the exact invoice it would pay, and only a
-- human's act decides it: 'approved' (claimed once, then 'paid' or 'failed' when the payment is
-- made), 'denied', or 'expired'. Nothing here holds budget: the payment re-checks the budget
-- when it is approved. The one-time secret is kept as its SHA-256 only.
CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,              -- public: shown to the agent and the human
    wallet       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'paid', 'failed', 'denied', 'expired')),
    subject      TEXT    NOT NULL,              -- what it buys: a resource (origin + path) or invoice:<hash>
    payment_hash TEXT    NOT NULL,
    bolt11       TEXT    NOT NULL,
    amount_msat  INTEGER NOT NULL CHECK (amount_msat >= 0),
    host         TEXT,
    url          TEXT,
    description  TEXT,
    reasons      TEXT    NOT NULL,              -- why a human is asked: above_sats, new_host
    request      TEXT    NOT NULL,              -- JSON: how to pay it (fee limit, payee, credential)
    secret_hash  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT,                          -- cli, page, dashboard, elicitation, app
    payment_id   INTEGER,
    error        TEXT
);
-- One open question per resource: asking again for it finds the pending one.
CREATE UNIQUE INDEX approvals_open ON approvals (wallet, subject) WHERE status = 'pending';
CREATE INDEX approvals_wallet ON approvals (wallet, created_at);
