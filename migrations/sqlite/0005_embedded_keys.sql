-- The embedded wallets' node keys live with the storage (on PostgreSQL they must: one wallet
-- for every instance). Keys an older version kept in `wallets/<name>.key` are taken in when the
-- wallet is next opened (their node id must match the one recorded here).
ALTER TABLE embedded_wallets ADD COLUMN node_key TEXT;
