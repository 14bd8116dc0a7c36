-- One server however it is named (see src/payee.rs): every key a payment's payee is known by
-- (`dns:<registrable domain>`, `ip:<address>`). The per-host cap sums the payments that share
-- a key with the payment being reserved.
CREATE TABLE payment_payees (
    payment_id INTEGER NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    wallet     TEXT    NOT NULL,
    payee_key  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (payment_id, payee_key)
);
CREATE INDEX payment_payees_key ON payment_payees (wallet, payee_key, created_at);

-- Payments made before this migration count under their host as written (IPv4 literals as
-- addresses; a name as its own domain, which is its registrable domain in the usual case).
INSERT INTO payment_payees (payment_id, wallet, payee_key, created_at)
    SELECT id, wallet,
           CASE WHEN host GLOB '[0-9]*.[0-9]*.[0-9]*.[0-9]*' THEN 'ip:' || host
                ELSE 'dns:' || host END,
           created_at FROM payments
     WHERE direction = 'out' AND host IS NOT NULL;

-- Sellers that took a payment and then refused the credential it bought: not paid again until
-- `until`, under any key of their identity, by any process on this ledger.
CREATE TABLE distrusted_payees (
    wallet       TEXT    NOT NULL,
    payee_key    TEXT    NOT NULL,
    until        INTEGER NOT NULL,
    origin       TEXT    NOT NULL,
    payment_hash TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (wallet, payee_key)
);

-- A cached credential the seller has honoured at least once (a response that was not a
-- refusal). A credential refused before it was ever honoured was never worth its payment:
-- it is not bought again (see src/fetch.rs).
ALTER TABLE token_cache ADD COLUMN honoured_at INTEGER;
