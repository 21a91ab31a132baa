-- Received SMS over the API, webhooks and their durable outbox, presence events.

-- Keyed hash of the sender (like recipients.number_mac): lets the owner filter by sender
-- without the number being stored in clear. Rows from before this migration have none.
ALTER TABLE inbound_messages ADD COLUMN sender_mac bytea;
CREATE INDEX inbound_account_sender ON inbound_messages (account_id, sender_mac);
CREATE INDEX inbound_account_received ON inbound_messages (account_id, received_at DESC);

CREATE TABLE webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url             text NOT NULL,
    events          text[] NOT NULL CHECK (cardinality(events) > 0),
    secret          bytea NOT NULL,          -- the signing key, sealed with the data key
    active          boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    failing_since   timestamptz              -- first failure since the last success
);
CREATE INDEX webhooks_account ON webhooks (account_id) WHERE active;

-- The outbox: one row per event and subscribed webhook, written in the same statement as
-- the state change that causes the event. It holds references, never message content:
-- the payload is built (decrypted) at delivery time.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,           -- the same for every webhook and every retry
    event_type      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- What the event is about (which ones are set depends on the type).
    device_id       bigint,
    message_id      bigint,
    position        smallint,
    inbound_id      bigint,
    status          text,
    error           text,
    attempt         integer,
    -- Delivery state.
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);

-- Every delivery attempt, for GET /api/webhooks/{id}/deliveries.
CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    status_code   integer,
    error         text,
    next_retry_at timestamptz
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Presence as announced to webhooks: device.online is sent when this turns true,
-- device.offline when the device has been gone longer than the grace period.
ALTER TABLE devices ADD COLUMN announced_online boolean NOT NULL DEFAULT false;

-- Fan an event out to the account's active webhooks that subscribe to it.
CREATE FUNCTION emit_webhook_event(
    p_account_id bigint, p_type text, p_device_id bigint, p_message_id bigint,
    p_position smallint, p_inbound_id bigint, p_status text, p_error text, p_attempt integer
) RETURNS integer
LANGUAGE sql AS $$
    WITH ev AS (SELECT gen_random_uuid() AS event_id),
    ins AS (
        INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type,
                                        device_id, message_id, position, inbound_id, status,
                                        error, attempt)
        SELECT w.id, p_account_id, ev.event_id, p_type, p_device_id, p_message_id,
               p_position, p_inbound_id, p_status, p_error, p_attempt
          FROM webhooks w, ev
         WHERE w.account_id = p_account_id AND w.active AND p_type = ANY (w.events)
        RETURNING 1
    )
    SELECT count(*)::integer FROM ins
$$;

CREATE OR REPLACE FUNCTION forget_account_data(p_account_id bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM webhooks WHERE account_id = p_account_id;
    DELETE FROM idempotency_keys WHERE account_id = p_account_id;
    DELETE FROM messages WHERE account_id = p_account_id;
    DELETE FROM inbound_messages WHERE account_id = p_account_id;
$$;
