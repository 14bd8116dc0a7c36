-- History kept by policy (see migrations/sqlite/0011_history_retention.sql): what deleted
-- payments added to a wallet's lifetime totals, carried forward by a trigger of the deleting
-- statement, and the indexes that find expired rows.
CREATE TABLE payments_carried (
    wallet       TEXT   NOT NULL,
    direction    TEXT   NOT NULL CHECK (direction IN ('out', 'in')),
    settled_msat BIGINT NOT NULL,
    rows_pruned  BIGINT NOT NULL,
    PRIMARY KEY (wallet, direction)
);

-- Once per statement, over the rows it deleted.
CREATE FUNCTION payments_carry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payments_carried (wallet, direction, settled_msat, rows_pruned)
        SELECT wallet, direction,
               SUM(CASE WHEN status = 'succeeded'
                        THEN amount_msat + CASE direction WHEN 'out' THEN fee_msat ELSE 0 END
                        ELSE 0 END),
               COUNT(*)
          FROM gone GROUP BY wallet, direction
    ON CONFLICT (wallet, direction) DO UPDATE
        SET settled_msat = payments_carried.settled_msat + excluded.settled_msat,
            rows_pruned = payments_carried.rows_pruned + excluded.rows_pruned;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_carry AFTER DELETE ON payments REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION payments_carry();

CREATE INDEX token_cache_expiry ON token_cache (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX embedded_invoices_unpaid ON embedded_invoices (expires_at) WHERE paid_by IS NULL;
CREATE INDEX free_tier_day ON free_tier (day);
CREATE INDEX mpp_consumed_charges_expiry ON mpp_consumed_charges (expires_at);
CREATE INDEX minted_tokens_expiry ON minted_tokens (valid_until) WHERE valid_until IS NOT NULL;
CREATE INDEX distrusted_payees_until ON distrusted_payees (until);
