-- Accounts own the data key; devices (phones) and tokens each hold a wrapped copy of it.
-- An account has one device today; the owner/device split lets several phones share an
-- account later without moving key material.

CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    username         text NOT NULL UNIQUE
                     CHECK (username ~ '^[A-Za-z0-9._-]{3,64}$'),
    -- Password credential: Argon2id parameters, the login verifier and the data key
    -- wrapped by the password's key-encryption key. The password itself is never stored.
    kdf_salt         bytea NOT NULL,
    kdf_memory_kib   integer NOT NULL,
    kdf_iterations   integer NOT NULL,
    kdf_lanes        integer NOT NULL,
    verifier         bytea NOT NULL,
    wrapped_key      bytea NOT NULL,
    -- Bumped on every password change so cached credentials elsewhere notice.
    credential_epoch integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz,
    -- What the phone says about itself (auth frame's `device`) and its telemetry.
    model            text,
    app_version      text,
    sims             smallint,
    battery          smallint,
    charging         boolean,
    signal           smallint,
    telemetry_at     timestamptz
);

CREATE INDEX devices_account ON devices (account_id);

-- Session tokens (issued at auth_ok) and API tokens. Only an HKDF-derived lookup hash is
-- stored, with the account's data key wrapped under the token's own derived key.
CREATE TABLE tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id    bigint REFERENCES devices (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('session', 'api')),
    name         text,
    lookup       bytea NOT NULL UNIQUE,
    wrapped_key  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE INDEX tokens_device ON tokens (device_id);
CREATE INDEX tokens_account ON tokens (account_id);

-- Called by a password reset (the old data key is gone): drops what only that key could
-- open. Later migrations redefine it as they add tables that hold encrypted data.
CREATE FUNCTION forget_account_data(p_account_id bigint) RETURNS void
LANGUAGE sql AS $$ SELECT NULL::void $$;
