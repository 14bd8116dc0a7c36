-- History kept by policy (README: "History"): old rows are deleted in small batches
-- (src/storage/ledger/retention.rs). What a deleted payment added to the wallet's lifetime
-- totals is carried forward here, by a trigger in the deleting statement itself, so
-- `totals()` (this plus the rows still kept) reads the same before and after any delete.
CREATE TABLE payments_carried (
    wallet       TEXT    NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
    settled_msat INTEGER NOT NULL, -- succeeded rows: out amount + fee, in amount
    rows_pruned  INTEGER NOT NULL, -- every row deleted, whatever its status
    PRIMARY KEY (wallet, direction)
) WITHOUT ROWID;

CREATE TRIGGER payments_carry AFTER DELETE ON payments
BEGIN
    INSERT INTO payments_carried (wallet, direction, settled_msat, rows_pruned) VALUES
        (OLD.wallet, OLD.direction,
         CASE WHEN OLD.status = 'succeeded'
              THEN OLD.amount_msat + CASE OLD.direction WHEN 'out' THEN OLD.fee_msat ELSE 0 END
              ELSE 0 END,
         1)
    ON CONFLICT (wallet, direction) DO UPDATE
        SET settled_msat = settled_msat + excluded.settled_msat,
            rows_pruned = rows_pruned + 1;
END;

-- Expired rows are found through an index, so a batch costs the same whatever the history.
CREATE INDEX token_cache_expiry ON token_cache (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX embedded_invoices_unpaid ON embedded_invoices (expires_at) WHERE paid_by IS NULL;
CREATE INDEX free_tier_day ON free_tier (day);
CREATE INDEX mpp_consumed_charges_expiry ON mpp_consumed_charges (expires_at);
CREATE INDEX minted_tokens_expiry ON minted_tokens (valid_until) WHERE valid_until IS NOT NULL;
CREATE INDEX distrusted_payees_until ON distrusted_payees (until);
