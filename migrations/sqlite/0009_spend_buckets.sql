-- Budget windows as running totals, so a reservation's cost does not grow with the day's
-- history. What every outgoing payment holds in the windows (a pending one its reservation,
-- a settled one what it cost, a failed one nothing) is added up per wallet in minute and hour
-- buckets of its creation time, by triggers, in the same transaction as the payment's own
-- write: the buckets can never disagree with the rows. A window [now - span, now] is then the
-- rows of its first partial minute, the minutes up to the first whole hour, and the hours from
-- there: at most 60 seconds of rows, 59 minute buckets and 25 hour buckets, whatever the
-- history (src/storage/ledger/sql.rs, `window_use`).
CREATE TABLE spend_buckets (
    wallet    TEXT    NOT NULL,
    span      INTEGER NOT NULL CHECK (span IN (60, 3600)),
    start     INTEGER NOT NULL, -- unix seconds, a multiple of span
    held_msat INTEGER NOT NULL,
    PRIMARY KEY (wallet, span, start)
) WITHOUT ROWID;

INSERT INTO spend_buckets (wallet, span, start, held_msat)
    SELECT wallet, 60, created_at - created_at % 60,
           SUM(CASE status WHEN 'pending' THEN reserved_msat
                           WHEN 'succeeded' THEN amount_msat + fee_msat ELSE 0 END)
      FROM payments WHERE direction = 'out' GROUP BY wallet, created_at - created_at % 60;
INSERT INTO spend_buckets (wallet, span, start, held_msat)
    SELECT wallet, 3600, created_at - created_at % 3600,
           SUM(CASE status WHEN 'pending' THEN reserved_msat
                           WHEN 'succeeded' THEN amount_msat + fee_msat ELSE 0 END)
      FROM payments WHERE direction = 'out' GROUP BY wallet, created_at - created_at % 3600;

CREATE TRIGGER spend_buckets_insert AFTER INSERT ON payments
WHEN NEW.direction = 'out'
BEGIN
    INSERT INTO spend_buckets (wallet, span, start, held_msat) VALUES
        (NEW.wallet, 60, NEW.created_at - NEW.created_at % 60,
         CASE NEW.status WHEN 'pending' THEN NEW.reserved_msat
                         WHEN 'succeeded' THEN NEW.amount_msat + NEW.fee_msat ELSE 0 END),
        (NEW.wallet, 3600, NEW.created_at - NEW.created_at % 3600,
         CASE NEW.status WHEN 'pending' THEN NEW.reserved_msat
                         WHEN 'succeeded' THEN NEW.amount_msat + NEW.fee_msat ELSE 0 END)
    ON CONFLICT (wallet, span, start) DO UPDATE SET held_msat = held_msat + excluded.held_msat;
END;

CREATE TRIGGER spend_buckets_update AFTER UPDATE OF status, reserved_msat, amount_msat, fee_msat
ON payments
WHEN NEW.direction = 'out'
BEGIN
    UPDATE spend_buckets
       SET held_msat = held_msat
           + (CASE NEW.status WHEN 'pending' THEN NEW.reserved_msat
                              WHEN 'succeeded' THEN NEW.amount_msat + NEW.fee_msat ELSE 0 END)
           - (CASE OLD.status WHEN 'pending' THEN OLD.reserved_msat
                              WHEN 'succeeded' THEN OLD.amount_msat + OLD.fee_msat ELSE 0 END)
     WHERE wallet = NEW.wallet
       AND ((span = 60 AND start = NEW.created_at - NEW.created_at % 60)
         OR (span = 3600 AND start = NEW.created_at - NEW.created_at % 3600));
END;

CREATE TRIGGER spend_buckets_delete AFTER DELETE ON payments
WHEN OLD.direction = 'out'
BEGIN
    UPDATE spend_buckets
       SET held_msat = held_msat
           - (CASE OLD.status WHEN 'pending' THEN OLD.reserved_msat
                              WHEN 'succeeded' THEN OLD.amount_msat + OLD.fee_msat ELSE 0 END)
     WHERE wallet = OLD.wallet
       AND ((span = 60 AND start = OLD.created_at - OLD.created_at % 60)
         OR (span = 3600 AND start = OLD.created_at - OLD.created_at % 3600));
END;

-- Every key of a payment's payee (JSON array), written with the payment: the trigger files
-- them in payment_payees in the same statement, one round trip fewer per reservation.
ALTER TABLE payments ADD COLUMN payee_keys TEXT;

CREATE TRIGGER payment_payees_insert AFTER INSERT ON payments
WHEN NEW.payee_keys IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO payment_payees (payment_id, wallet, payee_key, created_at)
        SELECT NEW.id, NEW.wallet, value, NEW.created_at FROM json_each(NEW.payee_keys);
END;
