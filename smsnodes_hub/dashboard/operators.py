"""Operator accounts: the people who log in to the dashboard. Separate from device accounts,
with the same username and password rules; only an Argon2id login verifier is stored. An
operator holds no data key, so the dashboard can show metadata but never message content."""

from __future__ import annotations

import asyncpg

from smsnodes_hub.auth import crypto
from smsnodes_hub.auth.accounts import (
    AccountError,
    Executor,
    check_password,
    check_username,
    could_log_in,
)
from smsnodes_hub.dashboard import operator_queries

# A login for an unknown operator still pays for one Argon2id run, so the time taken does not
# tell which usernames exist.
_DUMMY_SALT = b"\x01" * crypto.SALT_BYTES


async def create(
    db: Executor, kdf: crypto.PasswordKdf, params: crypto.KdfParams, username: str,
    password: str,
) -> int:
    check_username(username)
    check_password(password)
    salt = crypto.new_salt()
    keys = await kdf.derive(password, salt, params)
    try:
        return await operator_queries.create_operator(
            db, username, salt, params.memory_kib, params.iterations, params.lanes,
            keys.verifier,
        )
    except operator_queries.OperatorExists:
        raise AccountError(f"an operator named {username!r} already exists") from None


async def change_password(
    db: Executor, kdf: crypto.PasswordKdf, params: crypto.KdfParams, username: str,
    password: str,
) -> int:
    """Set a new password; every dashboard session of the operator ends. Returns how many."""
    check_password(password)
    salt = crypto.new_salt()
    keys = await kdf.derive(password, salt, params)
    ended = await operator_queries.set_operator_password(
        db, username, salt, params.memory_kib, params.iterations, params.lanes, keys.verifier
    )
    if ended is None:
        raise AccountError(f"no operator named {username!r}")
    return ended


async def remove(db: Executor, username: str) -> None:
    if not await operator_queries.remove_operator(db, username):
        raise AccountError(f"no operator named {username!r}")


async def list_all(db: Executor) -> list[asyncpg.Record]:
    return await operator_queries.list_operators(db)


async def verify(
    db: Executor, kdf: crypto.PasswordKdf, params: crypto.KdfParams, username: str,
    password: str,
) -> int | None:
    """The operator's id for the right password, None for anything else."""
    if not could_log_in(username, password):  # never a query for what cannot be stored
        return None
    row = await operator_queries.operator_credentials(db, username)
    if row is None:
        await kdf.derive(password, _DUMMY_SALT, params)
        return None
    stored = crypto.KdfParams(row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_lanes"])
    keys = await kdf.derive(password, row["kdf_salt"], stored)
    if not crypto.verifier_matches(row["verifier"], keys.verifier):
        return None
    return int(row["id"])
