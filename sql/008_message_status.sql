-- The overall status of a message (HTTP-API.md), kept in a column so that the history's
-- status filter and its count read an index instead of recomputing message_status() over
-- every recipient of every message of the account.
--
-- Triggers keep it true whoever changes a state (several modules do): each fires only when
-- a state really changes, at the end of the statement that changed it, so a statement that
-- updates a message and its recipients together (a status report, a cancel) is seen whole.
-- The column is written only when its value changes. Measured cost: the trigger's second
-- write of the row is what costs (every index of messages is updated again); the hottest
-- statements therefore set status themselves.
ALTER TABLE messages ADD COLUMN status text;

UPDATE messages m
   SET status = message_status(m.state,
                               ARRAY(SELECT r.state FROM recipients r WHERE r.message_id = m.id));

ALTER TABLE messages ALTER COLUMN status SET NOT NULL;

CREATE INDEX messages_account_status ON messages (account_id, status, created_at DESC);

CREATE OR REPLACE FUNCTION refresh_message_status(p_message_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT message_status(m.state,
                          ARRAY(SELECT r.state FROM recipients r WHERE r.message_id = m.id))
      INTO v_status
      FROM messages m WHERE m.id = p_message_id;
    UPDATE messages SET status = v_status
     WHERE id = p_message_id AND status IS DISTINCT FROM v_status;
END
$$;

CREATE OR REPLACE FUNCTION messages_state_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_message_status(NEW.id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION recipients_state_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_message_status(NEW.message_id);
    RETURN NULL;
END
$$;

-- A new message's recipients are all pending, so it stands where the message stands; the
-- hub's insert sets the column itself, this covers any other writer.
CREATE OR REPLACE FUNCTION messages_initial_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.status := message_status(NEW.state, ARRAY['pending']);
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_initial_status BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.status IS NULL) EXECUTE FUNCTION messages_initial_status();

-- `UPDATE OF state` plus the WHEN clause: the function runs only for a real change of state
-- that the statement did not already reflect in status (the hot paths, claim and ack, set
-- both), and the trigger's own write (of status only) does not fire it again.
CREATE TRIGGER messages_state_changed AFTER UPDATE OF state ON messages
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                       AND OLD.status IS NOT DISTINCT FROM NEW.status)
    EXECUTE FUNCTION messages_state_changed();

CREATE TRIGGER recipients_state_changed AFTER UPDATE OF state ON recipients
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION recipients_state_changed();
