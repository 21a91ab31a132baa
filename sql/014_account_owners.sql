-- Accounts that own several phones (ACCOUNTS.md "Model", "Keys"): an account has a name and
-- a password credential of its own, like a phone's. Every existing account has exactly one
-- device; it takes that device's name and a copy of its password credential, so the same
-- password opens the same data key (the key is wrapped with associated data naming the
-- account and the name, which are the same for both copies).

ALTER TABLE accounts
    ADD COLUMN name             text,
    ADD COLUMN kdf_salt         bytea,
    ADD COLUMN kdf_memory_kib   integer,
    ADD COLUMN kdf_iterations   integer,
    ADD COLUMN kdf_lanes        integer,
    ADD COLUMN verifier         bytea,
    ADD COLUMN wrapped_key      bytea,
    -- Bumped on every change of the account's password, as devices.credential_epoch is.
    ADD COLUMN credential_epoch integer NOT NULL DEFAULT 1;

UPDATE accounts a
   SET name = d.username, kdf_salt = d.kdf_salt, kdf_memory_kib = d.kdf_memory_kib,
       kdf_iterations = d.kdf_iterations, kdf_lanes = d.kdf_lanes, verifier = d.verifier,
       wrapped_key = d.wrapped_key
  FROM (SELECT DISTINCT ON (account_id) * FROM devices ORDER BY account_id, id) d
 WHERE d.account_id = a.id;

-- An account without a device could not be opened by anything (every password and token
-- belonged to a device), so what it holds is unreadable for good: it goes.
DELETE FROM accounts WHERE name IS NULL;

ALTER TABLE accounts
    ALTER COLUMN name SET NOT NULL,
    ALTER COLUMN kdf_salt SET NOT NULL,
    ALTER COLUMN kdf_memory_kib SET NOT NULL,
    ALTER COLUMN kdf_iterations SET NOT NULL,
    ALTER COLUMN kdf_lanes SET NOT NULL,
    ALTER COLUMN verifier SET NOT NULL,
    ALTER COLUMN wrapped_key SET NOT NULL,
    ADD CONSTRAINT accounts_name_key UNIQUE (name),
    ADD CONSTRAINT accounts_name_check CHECK (name ~ '^[A-Za-z0-9._-]{3,64}$');

-- One name space for accounts and phones: a name belongs to one account, which may give it
-- to itself and to one of its phones (a migrated account and its first phone, or an account
-- made by `device add NAME`), never to another account or another account's phone. Each
-- table's UNIQUE keeps its own names apart; this covers the pairs across the two. The
-- advisory lock (per name) makes two transactions taking the same name take turns, so the
-- second one sees the first one's row.
CREATE FUNCTION names_unique() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_name text;
    v_account bigint;
BEGIN
    IF TG_TABLE_NAME = 'accounts' THEN
        v_name := NEW.name;
        v_account := NEW.id;
    ELSE
        v_name := NEW.username;
        v_account := NEW.account_id;
    END IF;
    PERFORM pg_advisory_xact_lock(1397, hashtext(v_name));
    IF EXISTS (SELECT 1 FROM accounts WHERE name = v_name AND id <> v_account)
       OR EXISTS (SELECT 1 FROM devices WHERE username = v_name AND account_id <> v_account)
    THEN
        RAISE EXCEPTION 'the name % is taken', v_name
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'names_unique';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_names_unique BEFORE INSERT OR UPDATE OF name ON accounts
    FOR EACH ROW EXECUTE FUNCTION names_unique();
CREATE TRIGGER devices_names_unique BEFORE INSERT OR UPDATE OF username, account_id ON devices
    FOR EACH ROW EXECUTE FUNCTION names_unique();

-- tokens.device_id NULL is now an account token (its sends are routed); every token made
-- before this migration names its phone (pinned), as before. No schema change is needed.

-- Messages have no foreign key to their account (sql/011) and, once routed sends exist, a
-- message may wait in its account's pool without a device: they go with their account here,
-- once per statement (devices_deleted still takes those of each deleted device).
CREATE FUNCTION accounts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages m USING gone WHERE m.account_id = gone.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_deleted AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_deleted();

-- A phone may now leave an account that stays (ACCOUNTS.md "Managing phones"): what the
-- account owns stays with it. Its sent messages keep their history (messages.device_id
-- has no foreign key since sql/011); its received SMS stay too, without a phone.
DROP TRIGGER devices_deleted ON devices;
DROP FUNCTION devices_deleted();

ALTER TABLE inbound_messages ALTER COLUMN device_id DROP NOT NULL;
ALTER TABLE inbound_messages DROP CONSTRAINT inbound_messages_device_id_fkey;
ALTER TABLE inbound_messages ADD CONSTRAINT inbound_messages_device_id_fkey
    FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL;

-- Removing one phone of an account: it can no longer log in (its row, tokens and session
-- go); what it would have sent and nobody will report on any more ends `cancelled`, with
-- its events and webhooks. Returns the recipients cancelled, NULL when there is no such
-- phone. Every hub process drops the phone's socket.
CREATE FUNCTION remove_phone(p_device_id bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_account bigint;
    v_cancelled integer;
BEGIN
    SELECT account_id INTO v_account FROM devices WHERE id = p_device_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
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
