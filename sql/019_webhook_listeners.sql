-- Which webhooks receive an event: the one rule for every writer of the outbox, the
-- one-event function below and the set-based insert of a batch of status reports
-- (messaging/reports.py). A single-SELECT SQL function, so the planner expands it into the
-- statement that uses it instead of calling it per row.
CREATE FUNCTION webhook_listeners(p_account_id bigint, p_type text) RETURNS SETOF bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT w.id FROM webhooks w
     WHERE w.account_id = p_account_id AND w.active AND p_type = ANY (w.events)
$$;

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
      FROM webhook_listeners(p_account_id, p_type) AS w(id);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('smsnodes_hub', 'webhook');
    END IF;
    RETURN queued;
END
$$;
