-- Webhook delivery: the retry window counts from a delivery's first attempt, and emitting an
-- event wakes the delivery workers of every hub process at commit time.

-- When the first attempt was made: an event that waited for its account's key (no phone
-- connected after a restart) still gets the whole retry window once attempts begin.
ALTER TABLE webhook_deliveries ADD COLUMN first_attempt_at timestamptz;

-- The same fan-out as 004, plus a NOTIFY on the hub's channel when a delivery was queued.
-- NOTIFY is transactional: workers hear of the event only once the change that caused it
-- is committed, and never for one that was rolled back.
CREATE OR REPLACE FUNCTION emit_webhook_event(
    p_account_id bigint, p_type text, p_device_id bigint, p_message_id bigint,
    p_position smallint, p_inbound_id bigint, p_status text, p_error text, p_attempt integer
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_event uuid := gen_random_uuid();  -- one id for every webhook and every retry
    queued integer;
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, device_id,
                                    message_id, position, inbound_id, status, error, attempt)
    SELECT w.id, p_account_id, v_event, p_type, p_device_id, p_message_id, p_position,
           p_inbound_id, p_status, p_error, p_attempt
      FROM webhooks w
     WHERE w.account_id = p_account_id AND w.active AND p_type = ANY (w.events);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('smsnodes_hub', 'webhook');
    END IF;
    RETURN queued;
END
$$;
