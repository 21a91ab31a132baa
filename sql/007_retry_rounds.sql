-- Retries in rounds: a recipient that failed with a transient error waits in 'retry' until
-- every other recipient of its attempt has an outcome; then all of them go out together as
-- the next attempt. Attempts of one message never overlap, so a dropped connection can never
-- strand a recipient between two attempts, and a recipient's attempt counts its tries.
ALTER TABLE recipients DROP CONSTRAINT recipients_state_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_state_check CHECK (state IN
    ('pending', 'retry', 'sent', 'delivered', 'failed', 'expired', 'cancelled'));
CREATE INDEX recipients_retry ON recipients (message_id) WHERE state = 'retry';

-- The time the phone gave in its report (`at`), next to the hub's own clock (`at`).
ALTER TABLE message_events ADD COLUMN reported_at timestamptz;

-- A waiting recipient stands where its message stands; one awaiting a retry is scheduled.
CREATE OR REPLACE FUNCTION message_status(p_state text, p_recipient_states text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH s AS (
        SELECT CASE WHEN r = 'pending' THEN p_state WHEN r = 'retry' THEN 'scheduled'
                    ELSE r END AS status
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

-- A cancel or expiry of a message the phone holds must reach the phone even if it is
-- offline at that moment: the withdrawal waits here and goes out when the phone logs in.
ALTER TABLE messages ADD COLUMN withdraw_pending boolean NOT NULL DEFAULT false;
CREATE INDEX messages_withdraw_pending ON messages (device_id) WHERE withdraw_pending;
