-- The operator dashboard: operator accounts, their sessions, and indexes for its overview.

-- People who watch the hub on /dashboard. Separate from device accounts: an operator holds
-- no data key and can read no message text or number. Only an Argon2id login verifier is
-- stored (the key-encryption key that the same derivation yields is thrown away).
CREATE TABLE operators (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{3,64}$'),
    kdf_salt       bytea NOT NULL,
    kdf_memory_kib integer NOT NULL,
    kdf_iterations integer NOT NULL,
    kdf_lanes      integer NOT NULL,
    verifier       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);

-- Server-side sessions: the browser's cookie holds a random 256-bit id (signed); only its
-- SHA-256 is stored, so a copy of this table opens no session. Deleting a row logs that
-- browser out in every hub process at once.
CREATE TABLE operator_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id  bigint NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    id_hash      bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    remote       text
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
CREATE INDEX operator_sessions_expires ON operator_sessions (expires_at);

-- The overview's windows ("last hour", "last day") and the throughput chart, without
-- reading whole tables on every refresh. Named dashboard_* so no other migration's names clash.
CREATE INDEX dashboard_messages_created ON messages (created_at);
CREATE INDEX dashboard_messages_open ON messages (state)
    WHERE state IN ('scheduled', 'queued', 'dispatched', 'accepted');
CREATE INDEX dashboard_message_outcomes ON message_events (at)
    WHERE status IN ('sent', 'failed');
CREATE INDEX dashboard_webhook_deliveries_created ON webhook_deliveries (created_at);
