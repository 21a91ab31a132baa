-- Events never wait for a key: each webhook's signing secret is also sealed with the hub's
-- webhook key (webhooks/hubkey.py: webhooks.secret_key, or a file in database.data_dir,
-- never in the database), so a delivery can be signed while no key of its account is in
-- memory. Its payload then leaves out what only the account's key opens ("redacted").
--
-- `secret` keeps the copy sealed with the account's data key: it seals the hub's copy
-- again when that key is lost or differs between processes. Webhooks registered before
-- this migration get their hub copy the next time their account's key is in memory.
ALTER TABLE webhooks
    ADD COLUMN hub_secret bytea,   -- the signing secret, sealed with the hub's webhook key
    ADD COLUMN hub_key_id bytea;   -- which hub key sealed it (an HMAC of the key, 8 bytes)
