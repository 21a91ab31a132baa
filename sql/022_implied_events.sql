-- A message's timeline without the event rows that its other rows already say
-- (issue 13's WAL budget: each event row is a heap record and an index entry, and the
-- happy path wrote five of them, a third of the records of a message's whole life):
--
-- * a message written dispatched as it was stored (most of them) was queued and then
--   dispatched to `stored_to` in that instant: `messages.created_at` holds the time, so
--   no rows are written for either;
-- * a report that stands in for the phone's ack (the phone reported before its ack
--   arrived, or the ack was lost) was accepted in the same instant: its row says so
--   with `with_ack` instead of a row of its own;
-- * a recipient is delivered once and then never changes: its row keeps when
--   (`delivered_at`, and the phone's `delivered_reported_at`), so no event row either.
--
-- `message_timeline` is every event, written or implied: what shows a timeline reads
-- that. The other outcomes (sent, failed, cancelled, expired) keep their rows, so the
-- counts of sent and failed still read message_events. Events from before are unchanged
-- (the new columns NULL): each has its row.
ALTER TABLE messages ADD COLUMN stored_to bigint;
ALTER TABLE message_events ADD COLUMN with_ack boolean;
ALTER TABLE recipients ADD COLUMN delivered_at timestamptz,
                       ADD COLUMN delivered_reported_at timestamptz;

CREATE VIEW message_timeline AS
SELECT e.message_id, e.id, e.position, e.status, e.error, e.attempt, e.at, e.reported_at,
       e.device_id
  FROM message_events e
UNION ALL
SELECT e.message_id, e.id, NULL, 'accepted', NULL, e.attempt,
       e.at - interval '1 microsecond', NULL, NULL
  FROM message_events e
 WHERE e.with_ack
UNION ALL
SELECT m.id, s.id, NULL, s.status, NULL, 1, m.created_at + s.k * interval '1 microsecond',
       NULL, CASE WHEN s.status = 'dispatched' THEN m.stored_to END
  FROM messages m
 CROSS JOIN (VALUES (1, 'queued', -2::bigint), (2, 'dispatched', -1::bigint)) AS s(k, status, id)
 WHERE m.stored_to IS NOT NULL
UNION ALL
SELECT r.message_id, 0, r.position, 'delivered', r.error, r.attempt, r.delivered_at,
       r.delivered_reported_at, NULL
  FROM recipients r
 WHERE r.delivered_at IS NOT NULL;
