-- Pending payments indexed by wallet and direction (see migrations/sqlite/0012): the pending
-- incoming rows a seller leaves for every invoice never paid are not read by reservations.
CREATE INDEX payments_pending_by_wallet ON payments (wallet, direction, created_at)
    WHERE status = 'pending';
DROP INDEX payments_pending;
