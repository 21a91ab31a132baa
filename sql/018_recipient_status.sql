-- One recipient's part in its message's status, the rule message_status() applies to each
-- recipient, on its own so that a statement over one-recipient messages (most of them) can
-- use it: a SQL function that is a single expression is expanded into the statement by the
-- planner, where message_status() (a query over an array) is a call per row.
CREATE FUNCTION recipient_status(p_state text, p_recipient_state text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_recipient_state WHEN 'pending' THEN p_state WHEN 'retry' THEN 'scheduled'
                ELSE p_recipient_state END
$$;

CREATE OR REPLACE FUNCTION message_status(p_state text, p_recipient_states text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH s AS (
        SELECT recipient_status(p_state, r) AS status FROM unnest(p_recipient_states) AS r
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
