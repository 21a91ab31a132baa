-- Quotas (ACCOUNTS.md "Quotas"): at most N SMS a day (UTC) and M a month per account, an SMS
-- being one recipient times the message's segments. The counter is a row per account with a
-- quota, updated in the send's own statement under that row's lock, so the quota holds
-- across every hub process and racing sends. Accounts without a quota have no row: their
-- sends pay one probe of this table's primary key.
CREATE TABLE quotas (
    account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    daily      integer CHECK (daily > 0),    -- NULL: no daily limit
    monthly    integer CHECK (monthly > 0),  -- NULL: no monthly limit
    -- What is used of the day and month these name; a counter of a past period counts 0.
    day        date NOT NULL,
    day_used   integer NOT NULL DEFAULT 0 CHECK (day_used >= 0),
    month      date NOT NULL,  -- its first day
    month_used integer NOT NULL DEFAULT 0 CHECK (month_used >= 0),
    CHECK (daily IS NOT NULL OR monthly IS NOT NULL)
);

-- SMS per recipient (the text's segments), for giving SMS back; NULL on messages from
-- before, which count one each.
ALTER TABLE messages ADD COLUMN segments smallint;

-- A recipient that ends cancelled or expired without having been sent gives its SMS back
-- to the period its message was counted in, if that period is still the current one.
CREATE FUNCTION quota_give_back(p_account_id bigint, p_created_at timestamptz, p_sms bigint)
RETURNS integer
LANGUAGE sql AS $$
    WITH upd AS (
        UPDATE quotas SET
            day_used = CASE WHEN day = (p_created_at AT TIME ZONE 'UTC')::date
                            THEN greatest(0, day_used - p_sms) ELSE day_used END,
            month_used = CASE WHEN month = date_trunc('month', p_created_at AT TIME ZONE 'UTC')::date
                              THEN greatest(0, month_used - p_sms) ELSE month_used END
         WHERE account_id = p_account_id AND p_sms > 0
        RETURNING 1
    )
    SELECT count(*)::integer FROM upd
$$;

-- Removing a phone (016) gives back the SMS of what it cancels, as a cancel does.
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
        RETURNING id, created_at, segments
    ), r AS (
        UPDATE recipients SET state = 'cancelled', updated_at = now()
         WHERE message_id IN (SELECT id FROM m) AND state IN ('pending', 'retry')
        RETURNING message_id, position, attempt
    ), ev AS (
        INSERT INTO message_events (message_id, position, status, attempt)
        SELECT message_id, position, 'cancelled', attempt FROM r
    ), back AS (
        SELECT quota_give_back(v_account, m.created_at, count(*) * coalesce(m.segments, 1))
          FROM r JOIN m ON m.id = r.message_id
         GROUP BY m.id, m.created_at, m.segments
    )
    SELECT count(emit_webhook_event(v_account, 'message.cancelled', p_device_id, r.message_id,
                                    r.position, NULL, 'cancelled', NULL, r.attempt))
           + 0 * (SELECT count(*) FROM back)
      INTO v_cancelled FROM r;
    DELETE FROM devices WHERE id = p_device_id;
    PERFORM pg_notify('smsnodes_hub', 'credentials:' || p_device_id);
    RETURN v_cancelled;
END
$$;
