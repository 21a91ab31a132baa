-- Failed logins, shared by every hub process (smsnodes_hub/auth/throttle.py), so that a
-- guesser gets the same number of tries however many processes serve the hub. Keyed so that
-- a guesser slows only guesses: one row per (scope, username, address) counts one address's
-- failures for one username; the row with address '' counts a username's failures over all
-- addresses (a higher limit, and it refuses only addresses that failed for that username
-- too); username '' stands for every name no account can have, per address.
CREATE TABLE login_failures (
    scope        text NOT NULL CHECK (scope IN ('device', 'operator')),
    username     text NOT NULL,
    address      text NOT NULL,  -- an IPv4 address, an IPv6 /64, or '' (the username's own)
    failures     integer NOT NULL,
    locked_until timestamptz,
    forget_at    timestamptz NOT NULL,  -- a row past this counts as absent, and is deleted
    PRIMARY KEY (scope, username, address)
);
CREATE INDEX login_failures_forget ON login_failures (forget_at);

-- Whether a login may be checked now: `wait` is the seconds until it may (NULL: now), from
-- the address's own lockout for this username, or the username's when this address has
-- failed for it before; `failures` is the address's count for the username (a successful
-- login then forgets it).
CREATE FUNCTION login_refusal(p_scope text, p_username text, p_address text,
                              OUT wait integer, OUT failures integer)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN until > now() THEN ceil(extract(epoch FROM until - now()))::integer END,
           failures
      FROM (SELECT greatest(pair.locked_until,
                            CASE WHEN pair.failures > 0 THEN own.locked_until END) AS until,
                   coalesce(pair.failures, 0) AS failures
              FROM (SELECT 1) AS one
              LEFT JOIN login_failures pair
                     ON pair.scope = p_scope AND pair.username = p_username
                    AND pair.address = p_address AND pair.forget_at > now()
              LEFT JOIN login_failures own  -- the username's count over every address
                     ON own.scope = p_scope AND own.username = p_username AND own.address = ''
                    AND p_username <> '' AND own.forget_at > now()) AS state
$$;

-- One more failure of one row: after `p_max` failures it locks for `p_lockout` seconds,
-- doubling with every further failure (at most a day); forgotten `p_forget` seconds after
-- the last failure or the end of the lockout. Returns when the row will be forgotten.
CREATE FUNCTION count_login_failure(p_scope text, p_username text, p_address text,
                                    p_max integer, p_lockout double precision,
                                    p_forget double precision)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_lock timestamptz;
    v_forget timestamptz;
BEGIN
    INSERT INTO login_failures AS f (scope, username, address, failures, forget_at)
    VALUES (p_scope, p_username, p_address, 1, now())
    ON CONFLICT (scope, username, address) DO UPDATE
       SET failures = CASE WHEN f.forget_at <= now() THEN 1 ELSE f.failures + 1 END,
           locked_until = CASE WHEN f.forget_at <= now() THEN NULL ELSE f.locked_until END
    RETURNING failures INTO v_count;
    IF v_count >= p_max THEN
        v_lock := now() + make_interval(secs => least(
            p_lockout * 2 ^ least(v_count - p_max, 30), 86400));
    END IF;
    UPDATE login_failures
       SET locked_until = coalesce(v_lock, locked_until),
           forget_at = greatest(now(), coalesce(v_lock, locked_until, now()))
                       + make_interval(secs => p_forget)
     WHERE scope = p_scope AND username = p_username AND address = p_address
    RETURNING forget_at INTO v_forget;
    RETURN v_forget;
END
$$;

-- A failed login: counted for the address and username, and for the username alone, unless
-- the login was refused meanwhile (then nothing is counted and the wait is returned). Hub
-- processes hear of a well-formed username's failure (bus.LoginFailed, `login:<scope>:
-- <seconds until forgotten>:<username>`), so that they check it even when it hits their
-- credential cache.
CREATE FUNCTION record_login_failure(p_scope text, p_username text, p_address text,
                                     p_pair_max integer, p_name_max integer,
                                     p_lockout double precision, p_forget double precision)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_wait integer;
    v_until timestamptz;
BEGIN
    SELECT r.wait INTO v_wait FROM login_refusal(p_scope, p_username, p_address) r;
    IF v_wait IS NOT NULL THEN
        RETURN v_wait;
    END IF;
    v_until := count_login_failure(p_scope, p_username, p_address, p_pair_max, p_lockout,
                                   p_forget);
    IF p_username <> '' THEN
        v_until := greatest(v_until, count_login_failure(p_scope, p_username, '', p_name_max,
                                                         p_lockout, p_forget));
        PERFORM pg_notify('smsnodes_hub', 'login:' || p_scope || ':'
                          || ceil(extract(epoch FROM v_until - now()))::bigint || ':'
                          || p_username);
    END IF;
    RETURN NULL;
END
$$;
