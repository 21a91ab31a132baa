-- Fewer index entries and row locks per message (issue 13). A message's life is an insert
-- and three or four updates of its row, two of a recipient's and five event rows; every one
-- of those writes each index of its table again. What goes here, by the WAL each removed:

-- messages (account_id, id DESC) repeats messages_account_created for every reader: the
-- lists order by created_at, id.
DROP INDEX messages_account;

-- The dashboard's "last day" windows read a range of created_at, which follows the order
-- of insertion: a BRIN index answers them, and unlike a B-tree it is not written again on
-- every update of a row (PostgreSQL 16 and later keep such updates HOT-eligible, and a
-- page range is summarised only when it fills up).
DROP INDEX dashboard_messages_created;
CREATE INDEX dashboard_messages_created ON messages USING brin (created_at);
DROP INDEX dashboard_message_outcomes;
CREATE INDEX dashboard_message_outcomes ON message_events USING brin (at)
    WHERE status IN ('sent', 'failed');

-- Events are read by message only (message_events_message); the id stays as the tie-break
-- of their order, without an index of its own.
ALTER TABLE message_events DROP CONSTRAINT message_events_pkey;

-- A status report updates its recipient's state, error and time. The partial index on
-- state = 'retry' made every such update rewrite both indexes of recipients; without it,
-- and with room left on each page, the update stays on the page and touches no index.
-- The retry rounds find their messages from messages instead: a message whose round is
-- over (accepted or done) with a recipient waiting for a retry has the status 'scheduled'.
DROP INDEX recipients_retry;
CREATE INDEX messages_retry_due ON messages (id)
    WHERE status = 'scheduled' AND state IN ('accepted', 'done');
ALTER TABLE recipients SET (fillfactor = 70);

-- Foreign keys from the hot tables: each insert locked the account's or the message's row
-- FOR KEY SHARE (a WAL record each), and a row updated twice in one batch's transaction
-- checked its keys again. The hub writes these ids only from rows it has just read, and the
-- cascades they gave become statement triggers.
ALTER TABLE messages DROP CONSTRAINT messages_account_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_device_id_fkey;
ALTER TABLE recipients DROP CONSTRAINT recipients_message_id_fkey;

CREATE OR REPLACE FUNCTION messages_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM recipients r USING gone WHERE r.message_id = gone.id;
    DELETE FROM message_events e USING gone WHERE e.message_id = gone.id;
    RETURN NULL;
END
$$;

CREATE FUNCTION devices_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages m USING gone WHERE m.device_id = gone.id;
    RETURN NULL;
END
$$;

-- Deleting an account deletes its devices (that foreign key stays), which fires this.
CREATE TRIGGER devices_deleted AFTER DELETE ON devices
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION devices_deleted();
