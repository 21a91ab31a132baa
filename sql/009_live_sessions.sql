-- The one definition of "a live session": a device socket held by a hub process that has
-- beaten its heart within the last `stale_seconds`. Written out in eight statements before;
-- a SQL function of one SELECT is inlined by the planner, so callers pay nothing for it.
CREATE FUNCTION live_sessions(stale_seconds double precision)
RETURNS SETOF device_sessions
LANGUAGE sql STABLE AS $$
    SELECT s.* FROM device_sessions s JOIN hub_processes p ON p.id = s.process_id
     WHERE p.heartbeat_at > now() - make_interval(secs => stale_seconds)
$$;
