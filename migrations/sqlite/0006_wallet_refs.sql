-- What a hosted wallet backend calls a payment of ours, by payment hash: Strike's payment quote
-- and payment ids, OpenNode's charge ids (they cannot be looked up by payment hash). Written
-- before the call that creates the invoice or moves the money returns, so a crash or a lost
-- answer can still be looked up. `wallet` is the l402-mcp wallet name; `direction` 'out' for a
-- payment we made, 'in' for an invoice we issued; `external_id` is the backend's own text.
CREATE TABLE wallet_refs (
    backend      TEXT    NOT NULL,
    wallet       TEXT    NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
    payment_hash TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (backend, wallet, direction, payment_hash)
);
