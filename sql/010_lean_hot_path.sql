-- Less work per message on the hot path (issue 13, measured in docs/performance.md).
--
-- 1. No trigger function runs for a status report. Every statement that changes a
--    recipient's state either sets messages.status itself (a status report) or changes the
--    message's state in the same statement (cancel, expiry, retry rounds, an unreadable
--    message), and messages_state_changed then recomputes the status from every recipient
--    at the end of that statement. The per-recipient trigger only did the work twice.
DROP TRIGGER recipients_state_changed ON recipients;
DROP FUNCTION recipients_state_changed();

-- 2. The event log keeps no foreign key to messages: each of a message's five or so events
--    paid a lookup and a row lock (FOR KEY SHARE, with its WAL record) on the message it
--    was written beside. Events are written only by statements that just read or wrote
--    their message; when messages go (an account forgotten, a device removed), their events
--    go with them here, once per statement.
ALTER TABLE message_events DROP CONSTRAINT message_events_message_id_fkey;

CREATE FUNCTION messages_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_events e USING gone WHERE e.message_id = gone.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_deleted AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION messages_deleted();
