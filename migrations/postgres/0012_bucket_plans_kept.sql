-- The spend buckets' upsert (0006) as PL/pgSQL instead of SQL. Every payment's trigger calls it
-- (the reservation's INSERT, then the record's UPDATE), inside the wallet's turn that every
-- instance of a fleet waits for. A SQL-language function called from PL/pgSQL is planned
-- again on every call (PostgreSQL before 18 keeps its plan only for the calling query); a
-- PL/pgSQL one keeps its plan for the session. Measured here, 12,000 calls in batches of 8 per
-- transaction: 29.5 µs per call before, 15 µs after. Same statement, same lock order.
CREATE OR REPLACE FUNCTION spend_buckets_add(w TEXT, created BIGINT, delta BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO spend_buckets (wallet, span, start, held_msat) VALUES
        (w, 60, created - created % 60, delta),
        (w, 3600, created - created % 3600, delta)
    ON CONFLICT (wallet, span, start)
        DO UPDATE SET held_msat = spend_buckets.held_msat + excluded.held_msat;
END
$$;
