-- A top-up paid (or being paid) whose credential the seller has not yet answered: if the
-- process stops in between, it is presented again (or written off) before the session is next
-- used or closed, so a paid top-up is never forgotten.
ALTER TABLE mpp_buyer_sessions ADD COLUMN pending_top_up TEXT;
