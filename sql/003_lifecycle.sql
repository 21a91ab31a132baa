-- Message lifecycle: scheduling, expiry, retries, cancel, idempotency, pacing.

-- 'done': no recipient is waiting to be sent any more (each is sent, delivered, failed,
-- expired or cancelled). Scheduled retries bring a message back to 'scheduled'.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
UPDATE messages SET state = 'done' WHERE state IN ('cancelled', 'expired');
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('scheduled', 'queued', 'dispatched', 'accepted', 'done'));

CREATE INDEX messages_scheduled ON messages (scheduled_at) WHERE state = 'scheduled';
CREATE INDEX messages_expiring ON messages (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'queued', 'dispatched', 'accepted');
CREATE INDEX messages_account_created ON messages (account_id, created_at DESC);

-- Which delivery attempt an event belongs to (retries of failed recipients add attempts).
ALTER TABLE message_events ADD COLUMN attempt integer;

-- Pacing: at most this many SMS per minute from the device (NULL: no limit).
ALTER TABLE devices ADD COLUMN pace_per_minute integer CHECK (pace_per_minute > 0);

-- Idempotency-Key on send-sms: the first response, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    message_id   bigint REFERENCES messages (id) ON DELETE CASCADE,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The overall status of a message (HTTP-API.md): a waiting recipient stands where its
-- message stands; the least advanced of the recipients that have not ended wins; once all
-- have ended, their common status, or 'partial'.
CREATE FUNCTION message_status(p_state text, p_recipient_states text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH s AS (
        SELECT CASE WHEN r = 'pending' THEN p_state ELSE r END AS status
          FROM unnest(p_recipient_states) AS r
    ), open AS (
        SELECT status FROM s WHERE status IN ('scheduled', 'queued', 'dispatched', 'accepted', 'sent')
         ORDER BY array_position(ARRAY['scheduled', 'queued', 'dispatched', 'accepted', 'sent'], status)
         LIMIT 1
    )
    SELECT coalesce(
        (SELECT status FROM open),
        (SELECT CASE WHEN count(DISTINCT status) = 1 THEN min(status) ELSE 'partial' END FROM s)
    )
$$;

CREATE OR REPLACE FUNCTION forget_account_data(p_account_id bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM idempotency_keys WHERE account_id = p_account_id;
    DELETE FROM messages WHERE account_id = p_account_id;
    DELETE FROM inbound_messages WHERE account_id = p_account_id;
$$;
