-- Pending payments indexed by wallet and direction. A reservation sums the wallet's pending
-- outgoing payments (once per window); through an index of every pending row it also read the
-- pending incoming ones, and a seller leaves one of those for every invoice it issues and is
-- never paid (most 402 challenges): the reservation's cost grew with the challenges issued.
CREATE INDEX payments_pending_by_wallet ON payments (wallet, direction, created_at)
    WHERE status = 'pending';
DROP INDEX payments_pending;
