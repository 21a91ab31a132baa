"""Accounts as owners of phones (ACCOUNTS.md "Model", "Keys", "Managing phones"): an account
has a name and a password of its own; its data key is wrapped by that password, by each of
its phones' passwords and by each of its API tokens. A phone is added to an account with
the account's password (or an account token): the hub cannot wrap the key otherwise.

Names are one name space: `names_unique()` (sql/014) refuses an account or phone name that
another account or another account's phone has. Device logins and the phone's own password
are in accounts.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth import accounts, crypto
from smsnodes_hub.auth.accounts import (
    AccountError,
    Executor,
    Principal,
    check_password,
    check_username,
    name_taken,
    password_wrap_aad,
    rewrap_account,
    rewrap_phone,
)

log = logging.getLogger(__name__)

# The most phones one account may have: enough for a rack of SIMs, bounded against runaway
# creation through the API.
MAX_PHONES = 100


@dataclass(frozen=True, slots=True)
class AccountSummary:
    id: int
    name: str
    phones: int
    created_at: datetime


async def _new_credential(
    kdf: crypto.PasswordKdf, params: crypto.KdfParams, account_id: int, name: str,
    password: str, data_key: bytes,
) -> tuple[bytes, int, int, int, bytes, bytes]:
    """(salt, memory, iterations, lanes, verifier, wrapped key) of a password for `name`."""
    salt = crypto.new_salt()
    keys = await kdf.derive(password, salt, params)
    wrapped = crypto.wrap_key(keys.kek, data_key, password_wrap_aad(account_id, name))
    return salt, params.memory_kib, params.iterations, params.lanes, keys.verifier, wrapped


async def create_account(
    conn: asyncpg.Connection, kdf: crypto.PasswordKdf, params: crypto.KdfParams,
    name: str, password: str,
) -> int:
    """A new account without phones (add them with `add_phone`); returns its id."""
    check_username(name)
    check_password(password)
    data_key = crypto.new_data_key()
    async with conn.transaction():
        account_id = await conn.fetchval(
            "SELECT nextval(pg_get_serial_sequence('accounts', 'id'))")
        credential = await _new_credential(kdf, params, account_id, name, password, data_key)
        try:
            await conn.execute(
                """INSERT INTO accounts (id, name, kdf_salt, kdf_memory_kib, kdf_iterations,
                       kdf_lanes, verifier, wrapped_key)
                   OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                account_id, name, *credential,
            )
        except asyncpg.UniqueViolationError as exc:
            raise name_taken(name, exc) from None
    return int(account_id)


_ACCOUNT_ROW = """SELECT id, name, kdf_salt, kdf_memory_kib, kdf_iterations, kdf_lanes,
                         verifier, wrapped_key, credential_epoch
                    FROM accounts WHERE name = $1"""


async def login_account(
    db: Executor, kdf: crypto.PasswordKdf, params: crypto.KdfParams, name: str, password: str,
) -> Principal | None:
    """The account of this name with its own password (never the phone of that name, which
    Basic credentials would mean): for the CLI's `--account`. None for anything else."""
    row = await db.fetchrow(_ACCOUNT_ROW, name)
    if row is None:
        await kdf.derive(password, b"\x00" * crypto.SALT_BYTES, params)
        return None
    return await _open(kdf, row, password)


async def _open(kdf: crypto.PasswordKdf, row: asyncpg.Record, password: str) -> Principal | None:
    params = crypto.KdfParams(row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_lanes"])
    keys = await kdf.derive(password, row["kdf_salt"], params)
    if not crypto.verifier_matches(row["verifier"], keys.verifier):
        return None
    try:
        data_key = crypto.unwrap_key(keys.kek, row["wrapped_key"],
                                     password_wrap_aad(row["id"], row["name"]))
    except crypto.DecryptionError:
        log.warning("account %r: the password is right but its stored data key does not "
                    "open; the row was altered or damaged", row["name"])
        return None
    return Principal.build(row["id"], None, row["name"], data_key, row["credential_epoch"])


async def add_phone(
    db: Executor, kdf: crypto.PasswordKdf, params: crypto.KdfParams, owner: Principal,
    username: str, password: str,
) -> int:
    """A new phone of the owner's account, its password wrapping the account's data key
    (which the owner's login opened); returns the device id. The name must be new: no
    account and no phone has it (ACCOUNTS.md "Sending")."""
    check_username(username)
    check_password(password)
    credential = await _new_credential(kdf, params, owner.account_id, username, password,
                                       owner.data_key)
    try:
        device_id = await db.fetchval(
            """INSERT INTO devices (account_id, username, kdf_salt, kdf_memory_kib,
                   kdf_iterations, kdf_lanes, verifier, wrapped_key)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8
                WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE name = $2)
                  AND (SELECT count(*) FROM devices WHERE account_id = $1) < $9
                  -- The owner's credentials are still good (not changed since its login).
                  AND CASE WHEN $10::bigint IS NULL
                           THEN EXISTS (SELECT 1 FROM accounts
                                         WHERE id = $1 AND credential_epoch = $11)
                           ELSE EXISTS (SELECT 1 FROM devices
                                         WHERE id = $10 AND credential_epoch = $11) END
                  AND ($12::bigint IS NULL OR EXISTS (SELECT 1 FROM tokens WHERE id = $12))
               RETURNING id""",
            owner.account_id, username, *credential, MAX_PHONES, owner.device_id,
            owner.credential_epoch, owner.token_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise name_taken(username, exc) from None
    if device_id is None:
        if await db.fetchval("SELECT 1 FROM accounts WHERE name = $1", username):
            raise AccountError(f"a phone or account named {username!r} already exists")
        if await db.fetchval("SELECT count(*) FROM devices WHERE account_id = $1",
                             owner.account_id) >= MAX_PHONES:
            raise AccountError(f"the account has {MAX_PHONES} phones already")
        raise AccountError("the credentials changed since they were checked")
    return int(device_id)


async def list_accounts(db: Executor) -> list[AccountSummary]:
    rows = await db.fetch(
        """SELECT a.id, a.name, a.created_at,
                  (SELECT count(*) FROM devices d WHERE d.account_id = a.id) AS phones
             FROM accounts a ORDER BY a.id""")
    return [AccountSummary(r["id"], r["name"], r["phones"], r["created_at"]) for r in rows]


async def change_account_password(
    conn: asyncpg.Connection, kdf: crypto.PasswordKdf, params: crypto.KdfParams, name: str,
    old_password: str, new_password: str,
) -> bool:
    """Re-wrap the data key under the account's new password; the account's own tokens end.
    Its phones' passwords and tokens are their own and keep working, but for the phone that
    shares the account's name (a migrated account's first phone, or `device add NAME`): one
    name, one password, so it changes with it, and its tokens and sessions end. Returns True
    when there was such a phone."""
    check_password(new_password)
    async with conn.transaction():
        row = await conn.fetchrow(_ACCOUNT_ROW + " FOR UPDATE", name)
        if row is None:
            raise AccountError(f"no account named {name!r}")
        owner = await _open(kdf, row, old_password)
        if owner is None:
            raise AccountError("the current password is wrong")
        salt = crypto.new_salt()
        keys = await kdf.derive(new_password, salt, params)
        await rewrap_account(conn, row["id"], name, salt, params, keys, owner.data_key)
        paired = await conn.fetchval(
            "SELECT id FROM devices WHERE account_id = $1 AND username = $2 FOR UPDATE",
            row["id"], name)
        if paired is not None:
            await rewrap_phone(conn, row["id"], paired, name, salt, params, keys,
                               owner.data_key)
        return paired is not None


async def set_phone_password(
    conn: asyncpg.Connection, kdf: crypto.PasswordKdf, params: crypto.KdfParams,
    owner: Principal, username: str, new_password: str,
) -> bool:
    """A new password for a phone of the owner's account without the phone's current one
    (it was lost): the owner (the account itself, by `login_account`) opened the data key,
    which the new password wraps, so nothing is deleted. The phone's tokens and sessions
    end. Returns True when the phone shares the account's name, whose password then changes
    too (one name, one password)."""
    check_password(new_password)
    async with conn.transaction():
        row = await accounts.locked_phone(conn, username)
        if row["account_id"] != owner.account_id:
            raise AccountError(f"account {owner.username!r} has no phone named {username!r}")
        # The owner's password is still good (not changed since its login); the account's
        # row is locked with the phone's.
        epoch = await conn.fetchval("SELECT credential_epoch FROM accounts WHERE id = $1",
                                    owner.account_id)
        if not owner.is_account or epoch != owner.credential_epoch:
            raise AccountError("the credentials changed since they were checked")
        await accounts.set_phone_credential(conn, kdf, params, row, new_password,
                                            owner.data_key)
        return bool(row["paired"])


async def remove_account(db: Executor, name: str) -> int:
    """Delete the account with its phones, tokens, webhooks, messages and received SMS; hub
    processes drop its phones' sockets and its cached logins."""
    account_id = await db.fetchval(
        """WITH a AS (SELECT id FROM accounts WHERE name = $1),
                phones AS (SELECT d.id FROM devices d, a WHERE d.account_id = a.id),
                told AS (SELECT pg_notify('smsnodes_hub', 'credentials:' || id) FROM phones),
                gone AS (DELETE FROM accounts USING a WHERE accounts.id = a.id
                         RETURNING accounts.id)
           SELECT gone.id FROM gone, pg_notify('smsnodes_hub', 'account:' || gone.id)
            WHERE (SELECT count(*) FROM told) >= 0""",
        name,
    )
    if account_id is None:
        raise AccountError(f"no account named {name!r}")
    return int(account_id)


async def remove_phone(db: Executor, username: str) -> int:
    """`accounts.remove_device`, under the name of what it does for an account's phone."""
    return await accounts.remove_device(db, username)


async def account_id_of(db: Executor, name: str) -> int:
    found = await db.fetchval("SELECT id FROM accounts WHERE name = $1", name)
    if found is None:
        raise AccountError(f"no account named {name!r}")
    return int(found)
