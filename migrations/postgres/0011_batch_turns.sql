-- Everything a batch of the group committer (src/storage/pg_group.rs) locks before its writes,
-- in one round trip: the wallets' advisory locks, their spend-bucket rows, and the embedded
-- accounts its transfers move money between. Taken from the client one statement at a time,
-- these were four round trips, each inside the wallet's turn that every instance of a fleet
-- waits for; here the locks follow one another on the server.
--
-- Each kind is taken in one order that every other writer follows too, so that no two
-- writers ever wait for each other: advisory keys ascending; bucket rows by wallet, then
-- start descending, then the minute before the hour (the order of a payment's own trigger,
-- spend_buckets_add); accounts by name. Each row is found through its primary key.
--
-- `turns`: {"locks": [key, ...], "buckets": [{"wallet": w, "span": s, "start": t}, ...],
--           "payers": [name, ...], "hashes": [payment hash, ...]}; a payee is the account an
-- invoice of `hashes` was issued to.
CREATE FUNCTION l402_take_turns(turns JSONB) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lock_key BIGINT;
    b RECORD;
    names TEXT[];
    h TEXT;
    account TEXT;
BEGIN
    FOR lock_key IN SELECT DISTINCT k::BIGINT FROM jsonb_array_elements_text(turns->'locks') AS k ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;
    FOR b IN SELECT DISTINCT t.wallet, t.span, t.start
               FROM jsonb_to_recordset(turns->'buckets') AS t(wallet TEXT, span BIGINT, start BIGINT)
              ORDER BY t.wallet, t.start DESC, t.span
    LOOP
        PERFORM 1 FROM spend_buckets
          WHERE wallet = b.wallet AND span = b.span AND start = b.start
          FOR NO KEY UPDATE;
    END LOOP;
    names := ARRAY(SELECT jsonb_array_elements_text(turns->'payers'));
    FOR h IN SELECT jsonb_array_elements_text(turns->'hashes')
    LOOP
        names := names || ARRAY(SELECT wallet FROM embedded_invoices WHERE payment_hash = h);
    END LOOP;
    FOR account IN SELECT DISTINCT n FROM unnest(names) AS n ORDER BY 1
    LOOP
        PERFORM 1 FROM embedded_wallets WHERE name = account FOR NO KEY UPDATE;
    END LOOP;
END
$$;
