"""The SQL of dashboard operators and their login sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor


class OperatorExists(Exception):
    pass


# -- Operators ------------------------------------------------------------------------------


async def create_operator(
    db: Executor, username: str, salt: bytes, memory_kib: int, iterations: int, lanes: int,
    verifier: bytes,
) -> int:
    try:
        return int(await db.fetchval(
            """INSERT INTO operators (username, kdf_salt, kdf_memory_kib, kdf_iterations,
                                      kdf_lanes, verifier)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            username, salt, memory_kib, iterations, lanes, verifier,
        ))
    except asyncpg.UniqueViolationError:
        raise OperatorExists(username) from None


async def operator_credentials(db: Executor, username: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT id, username, kdf_salt, kdf_memory_kib, kdf_iterations, kdf_lanes, verifier
             FROM operators WHERE username = $1""",
        username,
    )


async def list_operators(db: Executor) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT o.id, o.username, o.created_at, o.last_login_at,
                  (SELECT count(*) FROM operator_sessions s
                    WHERE s.operator_id = o.id AND s.expires_at > now()) AS sessions
             FROM operators o ORDER BY o.username"""
    )


async def remove_operator(db: Executor, username: str) -> bool:
    # Their sessions go with them (ON DELETE CASCADE): logged out everywhere at once.
    return await db.fetchval(
        "DELETE FROM operators WHERE username = $1 RETURNING id", username
    ) is not None


async def set_operator_password(
    db: Executor, username: str, salt: bytes, memory_kib: int, iterations: int, lanes: int,
    verifier: bytes,
) -> int | None:
    """New verifier; every session of the operator ends. Returns how many ended, or None
    when there is no such operator."""
    row = await db.fetchrow(
        """WITH upd AS (
               UPDATE operators SET kdf_salt = $2, kdf_memory_kib = $3, kdf_iterations = $4,
                      kdf_lanes = $5, verifier = $6
                WHERE username = $1 RETURNING id
           ), gone AS (
               DELETE FROM operator_sessions WHERE operator_id IN (SELECT id FROM upd)
               RETURNING 1
           )
           SELECT (SELECT id FROM upd) AS id, (SELECT count(*) FROM gone) AS ended""",
        username, salt, memory_kib, iterations, lanes, verifier,
    )
    assert row is not None
    return None if row["id"] is None else int(row["ended"])


# -- Sessions -------------------------------------------------------------------------------


async def create_session(
    db: Executor, operator_id: int, id_hash: bytes, lifetime_seconds: float, remote: str | None
) -> None:
    # Expired sessions are swept here, at the moment a new one is made: no background task.
    await db.execute(
        """WITH sweep AS (
               DELETE FROM operator_sessions WHERE expires_at < now()
           ), seen AS (
               UPDATE operators SET last_login_at = now() WHERE id = $1
           )
           INSERT INTO operator_sessions (operator_id, id_hash, expires_at, remote)
           VALUES ($1, $2, now() + make_interval(secs => $3), $4)""",
        operator_id, id_hash, lifetime_seconds, remote,
    )


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: int
    operator_id: int
    username: str
    expires_at: datetime


async def find_session(db: Executor, id_hash: bytes) -> SessionRow | None:
    """The live session with this id hash. Notes the visit at most once a minute, so a page
    that refreshes every few seconds does not write on every refresh."""
    row = await db.fetchrow(
        """WITH s AS (
               SELECT s.id, s.operator_id, o.username, s.expires_at, s.last_seen_at
                 FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
                WHERE s.id_hash = $1 AND s.expires_at > now()
           ), touch AS (
               UPDATE operator_sessions SET last_seen_at = now()
                WHERE id IN (SELECT id FROM s WHERE last_seen_at < now() - interval '1 minute')
           )
           SELECT id, operator_id, username, expires_at FROM s""",
        id_hash,
    )
    if row is None:
        return None
    return SessionRow(row["id"], row["operator_id"], row["username"], row["expires_at"])


async def delete_session(db: Executor, id_hash: bytes) -> bool:
    return await db.fetchval(
        "DELETE FROM operator_sessions WHERE id_hash = $1 RETURNING id", id_hash
    ) is not None
