-- What an outgoing L402 payment buys: the credential's scope and macaroon (JSON: origin,
-- path_prefix, scheme, macaroon in standard base64, expires_at), written with the reservation.
-- A process killed after paying but before caching the credential loses nothing: when the
-- payment is reconciled as paid, the credential is rebuilt from this and the preimage.
ALTER TABLE payments ADD COLUMN credential TEXT;
