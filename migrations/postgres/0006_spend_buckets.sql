-- Budget windows as running totals (see migrations/sqlite/0009_spend_buckets.sql): what every
-- outgoing payment holds, added up per wallet in minute and hour buckets of its creation time
-- by a trigger, in the payment's own transaction.
CREATE TABLE spend_buckets (
    wallet    TEXT   NOT NULL,
    span      BIGINT NOT NULL CHECK (span IN (60, 3600)),
    start     BIGINT NOT NULL,
    held_msat BIGINT NOT NULL,
    PRIMARY KEY (wallet, span, start)
);

CREATE FUNCTION spend_held(status TEXT, reserved BIGINT, amount BIGINT, fee BIGINT)
RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'pending' THEN reserved WHEN 'succeeded' THEN amount + fee ELSE 0 END
$$;

INSERT INTO spend_buckets (wallet, span, start, held_msat)
    SELECT wallet, 60, created_at - created_at % 60,
           SUM(spend_held(status, reserved_msat, amount_msat, fee_msat))
      FROM payments WHERE direction = 'out' GROUP BY wallet, created_at - created_at % 60;
INSERT INTO spend_buckets (wallet, span, start, held_msat)
    SELECT wallet, 3600, created_at - created_at % 3600,
           SUM(spend_held(status, reserved_msat, amount_msat, fee_msat))
      FROM payments WHERE direction = 'out' GROUP BY wallet, created_at - created_at % 3600;

-- Minute bucket first, then hour: every transaction takes the two row locks in one order.
CREATE FUNCTION spend_buckets_add(w TEXT, created BIGINT, delta BIGINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO spend_buckets (wallet, span, start, held_msat) VALUES
        (w, 60, created - created % 60, delta),
        (w, 3600, created - created % 3600, delta)
    ON CONFLICT (wallet, span, start)
        DO UPDATE SET held_msat = spend_buckets.held_msat + excluded.held_msat
$$;

CREATE FUNCTION spend_buckets_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT := 0;
    row_wallet TEXT;
    row_created BIGINT;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.direction = 'out' THEN
        delta := delta - spend_held(OLD.status, OLD.reserved_msat, OLD.amount_msat, OLD.fee_msat);
        row_wallet := OLD.wallet;
        row_created := OLD.created_at;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.direction = 'out' THEN
        delta := delta + spend_held(NEW.status, NEW.reserved_msat, NEW.amount_msat, NEW.fee_msat);
        row_wallet := NEW.wallet;
        row_created := NEW.created_at;
    END IF;
    IF row_wallet IS NOT NULL AND (delta <> 0 OR TG_OP = 'INSERT') THEN
        PERFORM spend_buckets_add(row_wallet, row_created, delta);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER spend_buckets_track AFTER INSERT OR UPDATE OF status, reserved_msat, amount_msat, fee_msat OR DELETE
    ON payments FOR EACH ROW EXECUTE FUNCTION spend_buckets_track();

-- Every key of a payment's payee (JSON array), written with the payment and filed in
-- payment_payees by a trigger: one round trip fewer per reservation.
ALTER TABLE payments ADD COLUMN payee_keys TEXT;

CREATE FUNCTION payment_payees_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_payees (payment_id, wallet, payee_key, created_at)
        SELECT NEW.id, NEW.wallet, k, NEW.created_at
          FROM jsonb_array_elements_text(NEW.payee_keys::jsonb) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER payment_payees_insert AFTER INSERT ON payments
    FOR EACH ROW WHEN (NEW.payee_keys IS NOT NULL) EXECUTE FUNCTION payment_payees_insert();
