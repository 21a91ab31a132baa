-- A connected phone is seen for as long as its hub process beats: while it has a session,
-- its last sighting is that process's heartbeat (hub_processes is UNLOGGED: no WAL), not
-- a write of every connected device's row every five seconds, which at 10,000 idle phones
-- was 2,000 row updates a second and a third of a core of PostgreSQL
-- (docs/performance.md). devices.last_seen_at holds the sightings without a session: the
-- login, the close, a telemetry frame, and for the phones of a process that died, its
-- last beat, written when the process's row is swept (sessions.py).
CREATE FUNCTION device_seen_at(p_device_id bigint, p_last_seen timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT greatest(p_last_seen,
                    (SELECT p.heartbeat_at FROM device_sessions s
                       JOIN hub_processes p ON p.id = s.process_id
                      WHERE s.device_id = p_device_id))
$$;
