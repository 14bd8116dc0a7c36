-- What a hosted wallet backend calls a payment of ours, by payment hash (the same table as
-- migrations/sqlite/0006_wallet_refs.sql): Strike's payment quote and payment ids, OpenNode's
-- charge ids, written before the call that creates the invoice or moves the money returns.
CREATE TABLE wallet_refs (
    backend      TEXT   NOT NULL,
    wallet       TEXT   NOT NULL,
    direction    TEXT   NOT NULL CHECK (direction IN ('out', 'in')),
    payment_hash TEXT   NOT NULL,
    external_id  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (backend, wallet, direction, payment_hash)
);
