-- The delivery queue, presence across hub processes, and received SMS.

-- Every running hub process registers here and heartbeats; a process whose heartbeat is
-- stale is dead, and so are its device sessions.
CREATE UNLOGGED TABLE hub_processes (
    id           uuid PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per device with a live authenticated socket, naming the process that holds it.
CREATE UNLOGGED TABLE device_sessions (
    device_id     bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    connection_id uuid NOT NULL,
    process_id    uuid NOT NULL REFERENCES hub_processes (id) ON DELETE CASCADE,
    connected_at  timestamptz NOT NULL DEFAULT now(),
    remote        text
);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The phone that will send it; it may change until the phone acks (failover later).
    device_id       bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    priority        smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),
    state           text NOT NULL CHECK (state IN
                        ('scheduled', 'queued', 'dispatched', 'accepted', 'cancelled', 'expired')),
    attempt         integer NOT NULL DEFAULT 1,
    body            bytea NOT NULL,             -- AES-256-GCM under the account's data key
    recipient_count smallint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    scheduled_at    timestamptz,
    expires_at      timestamptz,
    dispatched_to   uuid,                       -- the connection holding it while dispatched
    dispatched_at   timestamptz,
    accepted_at     timestamptz
);

-- "Next messages for device D": highest priority first, oldest first; an index scan.
CREATE INDEX messages_queue ON messages (device_id, priority DESC, id) WHERE state = 'queued';
CREATE INDEX messages_in_flight ON messages (device_id, dispatched_to) WHERE state = 'dispatched';
CREATE INDEX messages_account ON messages (account_id, id DESC);

CREATE TABLE recipients (
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position   smallint NOT NULL,
    number     bytea NOT NULL,                  -- encrypted
    number_mac bytea NOT NULL,                  -- keyed hash: matches status reports
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN
                   ('pending', 'sent', 'delivered', 'failed', 'expired', 'cancelled')),
    error      text,
    attempt    integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, position)
);

CREATE INDEX recipients_mac ON recipients (message_id, number_mac);

-- The timeline of a message, for the status API: whole-message steps have no position.
CREATE TABLE message_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position   smallint,
    status     text NOT NULL,
    error      text,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX message_events_message ON message_events (message_id, id);

CREATE TABLE inbound_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ref         text NOT NULL,
    sender      bytea NOT NULL,                 -- encrypted
    body        bytea NOT NULL,                 -- encrypted
    received_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, ref)
);

CREATE INDEX inbound_account ON inbound_messages (account_id, id DESC);

CREATE OR REPLACE FUNCTION forget_account_data(p_account_id bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM messages WHERE account_id = p_account_id;
    DELETE FROM inbound_messages WHERE account_id = p_account_id;
$$;
