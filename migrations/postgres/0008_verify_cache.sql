-- Gateway instances keep the root keys and terms of tokens they verified in memory
-- (src/storage/verify_cache.rs). Whenever a root key or a token's terms are deleted or changed,
-- by an instance revoking a token or by anyone else, every instance is told at commit:
-- NOTIFY l402_root_keys with the key id (hex) as the payload.

CREATE FUNCTION l402_root_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('l402_root_keys', OLD.key_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER root_keys_changed AFTER UPDATE OR DELETE ON root_keys
    FOR EACH ROW EXECUTE FUNCTION l402_root_key_changed();

CREATE TRIGGER minted_tokens_changed AFTER UPDATE OR DELETE ON minted_tokens
    FOR EACH ROW EXECUTE FUNCTION l402_root_key_changed();
