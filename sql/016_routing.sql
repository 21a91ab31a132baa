-- Routing (ACCOUNTS.md "Routing rules"): a send authenticated as the account goes to the
-- phone the hub chooses, or waits in the account's pool when none can take it; a routed
-- message that a phone did not ack moves to another phone when that phone's connection
-- ends (failover).

-- NULL: the message waits in its account's pool for the first phone with room. Only a
-- routed message is ever there; a pinned one always names its phone.
ALTER TABLE messages ALTER COLUMN device_id DROP NOT NULL;
ALTER TABLE messages ADD COLUMN routed boolean NOT NULL DEFAULT false;

-- "Next messages of the account's pool": as messages_queue is for one phone. Empty unless
-- routed messages wait, so the phones' claims pay one probe of an empty index for it.
CREATE INDEX messages_pool ON messages (account_id, priority DESC, id)
    WHERE state = 'queued' AND device_id IS NULL;

-- Routed messages waiting for one phone: when it has no live session any more (its process
-- died, or a send chose it as its socket was closing), they go back to the pool (the hub's
-- sweep, every heartbeat). Holds nothing for pinned messages.
CREATE INDEX messages_routed_waiting ON messages (device_id)
    WHERE state = 'queued' AND routed AND device_id IS NOT NULL;

-- The phone of each `dispatched` event (rule 5: GET /api/messages/{id} names the phone of
-- every attempt). Events from before have none: their message never changed phones, so
-- the reader falls back to the message's phone.
ALTER TABLE message_events ADD COLUMN device_id bigint;

-- What routing reads about a live session besides the process holding it: when the phone
-- was last given a routed message (ties go to the one served least recently), and, for a
-- paced phone, until when its minute has no room (written by its process as the pacing
-- fills; NULL or past: room now). UNLOGGED like the table: no WAL for either.
ALTER TABLE device_sessions ADD COLUMN routed_at timestamptz;
ALTER TABLE device_sessions ADD COLUMN room_at timestamptz;

-- Failover's cancels: a routed message taken from a phone whose connection ended (it may
-- still hold the message) is withdrawn from that phone when it comes back. If the message
-- still waits in the pool then, the phone simply takes it back instead. Not a flag on the
-- message: the message may have moved on, several times.
CREATE TABLE pending_cancels (
    device_id  bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    message_id bigint NOT NULL,
    PRIMARY KEY (device_id, message_id)
);

CREATE OR REPLACE FUNCTION messages_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM recipients r USING gone WHERE r.message_id = gone.id;
    DELETE FROM message_events e USING gone WHERE e.message_id = gone.id;
    DELETE FROM pending_cancels c USING gone WHERE c.message_id = gone.id;
    RETURN NULL;
END
$$;

-- Removing a phone: its routed messages that it has not acked go back to the pool (and the
-- account's other phones are woken); what was pinned to it, or acked by it, ends
-- `cancelled`, since no report can come for it any more.
CREATE OR REPLACE FUNCTION remove_phone(p_device_id bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_account bigint;
    v_cancelled integer;
BEGIN
    SELECT account_id INTO v_account FROM devices WHERE id = p_device_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE messages SET device_id = NULL, dispatched_to = NULL, withdraw_pending = false,
                        state = CASE WHEN state = 'scheduled' THEN 'scheduled' ELSE 'queued' END
     WHERE device_id = p_device_id AND routed
       AND state IN ('scheduled', 'queued', 'dispatched');
    IF FOUND THEN
        PERFORM pg_notify('smsnodes_hub', 'pool:' || v_account);
    END IF;
    WITH m AS (
        UPDATE messages SET state = 'done', dispatched_to = NULL, withdraw_pending = false
         WHERE device_id = p_device_id
           AND state IN ('scheduled', 'queued', 'dispatched', 'accepted')
        RETURNING id
    ), r AS (
        UPDATE recipients SET state = 'cancelled', updated_at = now()
         WHERE message_id IN (SELECT id FROM m) AND state IN ('pending', 'retry')
        RETURNING message_id, position, attempt
    ), ev AS (
        INSERT INTO message_events (message_id, position, status, attempt)
        SELECT message_id, position, 'cancelled', attempt FROM r
    )
    SELECT count(emit_webhook_event(v_account, 'message.cancelled', p_device_id, r.message_id,
                                    r.position, NULL, 'cancelled', NULL, r.attempt))
      INTO v_cancelled FROM r;
    DELETE FROM devices WHERE id = p_device_id;
    PERFORM pg_notify('smsnodes_hub', 'credentials:' || p_device_id);
    RETURN v_cancelled;
END
$$;
