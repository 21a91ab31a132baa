-- No index on a message's state alone. A message's state changes within seconds, and a
-- burst changes the whole table's mix: ten thousand messages queued while the phones were
-- away, against statistics from an ANALYZE that saw almost none queued. Planned from those,
-- the claims, the acks and the logins of a reconnecting fleet took dashboard_messages_open
-- for their lookups (it matches any open state) and read every open message for each item
-- of a batch: a 10,000-phone reconnect storm took 28 s instead of 11. The lookups have
-- their own indexes, led by the device (messages_queue, messages_in_flight) or the id,
-- which stay right whatever the statistics say; the dashboard counts open messages state
-- by state through the partial indexes below (dashboard/queries.py). Fewer index entries
-- too: each step of a message from queued to accepted wrote one into this index.
DROP INDEX dashboard_messages_open;
CREATE INDEX messages_accepted ON messages (device_id) WHERE state = 'accepted';
