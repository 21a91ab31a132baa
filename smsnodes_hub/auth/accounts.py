"""Device accounts: who a caller is (`Principal`), the rules for usernames and passwords, and
creating, listing, removing and re-keying accounts. Logins are in `logins.py`.

A successful login yields a `Principal`: who the caller is, plus the account's data key
in memory (it is never stored unwrapped)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from smsnodes_hub import storable
from smsnodes_hub.auth import crypto

# What a query runs on: the pool, a connection, or one lent by the pool.
Executor = asyncpg.Connection | asyncpg.Pool | asyncpg.pool.PoolConnectionProxy

# \Z, not $: `$` also matches before a final "\n", which the database CHECK refuses.
USERNAME_RE = re.compile(r"^[A-Za-z0-9._-]{3,64}\Z")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# Session tokens kept per device: enough for reinstalls and several app builds, bounded so a
# phone that logs in with its password on every start cannot grow the table forever.
MAX_SESSION_TOKENS = 20


class AccountError(Exception):
    """A request about an account that cannot be done; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Principal:
    """A phone (`device_id` set) or its account (`device_id` None: the account's own
    password or an account token). Both hold the same data key."""

    account_id: int
    device_id: int | None
    username: str
    data_key: bytes = field(repr=False)
    credential_epoch: int
    mac_key: bytes = field(repr=False)
    token_id: int | None = None  # set when the login was by token: revoking it ends this

    @classmethod
    def build(
        cls, account_id: int, device_id: int | None, username: str, data_key: bytes, epoch: int,
        token_id: int | None = None,
    ) -> Principal:
        return cls(
            account_id, device_id, username, data_key, epoch, crypto.number_mac_key(data_key),
            token_id,
        )

    @property
    def is_account(self) -> bool:
        """The account itself, not one of its phones: its sends are routed."""
        return self.device_id is None

    @property
    def phone_id(self) -> int:
        """The phone's id, for what only a phone can do (callers check `is_account`)."""
        assert self.device_id is not None, "an account principal has no phone"
        return self.device_id

    def seal(self, plaintext: str, purpose: str) -> bytes:
        return crypto.seal(
            self.data_key, plaintext.encode("utf-8"), crypto.aad(self.account_id, purpose)
        )

    def open(self, blob: bytes, purpose: str) -> str:
        return crypto.open_sealed(
            self.data_key, blob, crypto.aad(self.account_id, purpose)
        ).decode("utf-8")

    def number_mac(self, number: str) -> bytes:
        return crypto.number_mac(self.mac_key, number)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    id: int
    username: str
    created_at: datetime
    last_seen_at: datetime | None


def check_username(username: Any) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise AccountError(
            "username must be 3 to 64 characters: letters, digits, '.', '_' or '-'"
        )
    return username


def check_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password must be at most {MAX_PASSWORD} characters")
    why = storable.problem(password)
    if why is not None:  # a login could not send it back (JSON, Basic): refused everywhere
        raise AccountError(f"password {why}")
    return password


def could_log_in(username: str, password: str) -> bool:
    """False for credentials no account can have (a malformed username, a password the rules
    above refuse, a NUL anywhere): such a login fails without a query or an Argon2id run,
    which tells nobody anything, since the rules are public."""
    return (USERNAME_RE.match(username) is not None and 0 < len(password) <= MAX_PASSWORD
            and storable.storable(password))


def password_wrap_aad(account_id: int, username: str) -> bytes:
    return crypto.aad(account_id, f"wrap/password/{username}")


def token_wrap_aad(account_id: int) -> bytes:
    return crypto.aad(account_id, "wrap/token")


# -- Accounts ---------------------------------------------------------------------------------


async def create_device(
    conn: asyncpg.Connection,
    kdf: crypto.PasswordKdf,
    params: crypto.KdfParams,
    username: str,
    password: str,
) -> int:
    """Create an account with its first device, both of this name and password (the account's
    credential is a copy of the phone's, as a migrated account's is); returns the device id.
    Phones of an existing account are added by `owners.add_phone`."""
    check_username(username)
    check_password(password)
    salt = crypto.new_salt()
    keys = await kdf.derive(password, salt, params)
    data_key = crypto.new_data_key()
    async with conn.transaction():
        account_id = await conn.fetchval(
            "SELECT nextval(pg_get_serial_sequence('accounts', 'id'))")
        wrapped = crypto.wrap_key(keys.kek, data_key, password_wrap_aad(account_id, username))
        credential = (salt, params.memory_kib, params.iterations, params.lanes, keys.verifier,
                      wrapped)
        try:
            await conn.execute(
                """INSERT INTO accounts (id, name, kdf_salt, kdf_memory_kib, kdf_iterations,
                       kdf_lanes, verifier, wrapped_key)
                   OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                account_id, username, *credential,
            )
            return await conn.fetchval(
                """INSERT INTO devices (account_id, username, kdf_salt, kdf_memory_kib,
                       kdf_iterations, kdf_lanes, verifier, wrapped_key)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
                account_id, username, *credential,
            )
        except asyncpg.UniqueViolationError as exc:
            raise name_taken(username, exc) from None


def name_taken(name: str, exc: asyncpg.UniqueViolationError) -> AccountError:
    """The words for a name that an account or a phone already has."""
    if exc.constraint_name == "devices_username_key":
        return AccountError(f"a device named {name!r} already exists")
    return AccountError(f"a phone or account named {name!r} already exists")


async def list_devices(db: Executor) -> list[DeviceSummary]:
    rows = await db.fetch(
        "SELECT id, username, created_at, device_seen_at(id, last_seen_at) AS last_seen_at"
        " FROM devices ORDER BY id"
    )
    return [DeviceSummary(**dict(r)) for r in rows]


async def remove_device(db: Executor, username: str) -> int:
    """Remove the phone. When it is its account's only phone and shares the account's name
    (an account made by `device add NAME`, or migrated), the account goes with it, with
    everything it owns, as it always did. Otherwise the account stays and keeps its history:
    the phone can no longer log in and what it would still have sent is cancelled (sql
    `remove_phone`). Hub processes drop the phone's socket."""
    row = await db.fetchrow(
        """SELECT d.id, d.account_id, a.name = d.username AND NOT EXISTS (
                      SELECT 1 FROM devices o WHERE o.account_id = d.account_id
                         AND o.id <> d.id) AS whole_account
             FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.username = $1""",
        username,
    )
    if row is None:
        raise AccountError(f"no device named {username!r}")
    if row["whole_account"]:
        gone = await db.fetchval(
            """WITH gone AS (DELETE FROM accounts WHERE id = $1 RETURNING id)
               SELECT gone.id FROM gone,
                      pg_notify('smsnodes_hub', 'credentials:' || $2::bigint) AS c,
                      pg_notify('smsnodes_hub', 'account:' || gone.id) AS a""",
            row["account_id"], row["id"],
        )
    else:
        gone = await db.fetchval("SELECT remove_phone($1)", row["id"])
    if gone is None:  # removed meanwhile by someone else
        raise AccountError(f"no device named {username!r}")
    return int(row["id"])


# The phone row a password change locks: its credential, its account's name, and the
# account's other phones (which hold the same data key).
_PHONE_ROW = """SELECT d.id, d.username, d.account_id, d.kdf_salt, d.kdf_memory_kib,
                       d.kdf_iterations, d.kdf_lanes, d.verifier, d.wrapped_key,
                       a.name AS account_name, a.name = d.username AS paired,
                       ARRAY(SELECT o.username FROM devices o WHERE o.account_id = d.account_id
                                AND o.id <> d.id ORDER BY o.id) AS others
                  FROM devices d JOIN accounts a ON a.id = d.account_id
                 WHERE d.username = $1 FOR UPDATE"""


async def locked_phone(conn: asyncpg.Connection, username: str) -> asyncpg.Record:
    """The phone's row (`_PHONE_ROW`), locked until the caller's transaction ends."""
    row = await conn.fetchrow(_PHONE_ROW, username)
    if row is None:
        raise AccountError(f"no device named {username!r}")
    return row


async def change_password(
    conn: asyncpg.Connection,
    kdf: crypto.PasswordKdf,
    params: crypto.KdfParams,
    username: str,
    old_password: str | None,
    new_password: str,
) -> bool:
    """Re-wrap the account's data key under the phone's new password and end every token of
    the phone. Returns True when the account's own password changed with it (below).

    With the current password the data key stays the same, so queued and stored messages
    stay readable. Without it (`old_password=None`, a reset) the key cannot be recovered:
    the server never holds it unwrapped. A reset therefore starts a new key and deletes what
    was stored under the old one, which nobody could read any more. That is done only when
    nothing else holds the key: it is refused while the account's own password (an account
    that is not the phone's namesake) or another phone does, and the refusal says how to
    keep the data (`owners.set_phone_password` with the account's password).

    A phone that shares its name with its account (a migrated account and its first phone,
    or `device add NAME`) shares its password too: one name, one password. The account's
    changes with it, and the account's own tokens end as well (as
    `owners.change_account_password` does the other way round)."""
    check_password(new_password)
    async with conn.transaction():
        row = await locked_phone(conn, username)
        account_id = row["account_id"]
        if old_password is None:
            refuse_reset(row, username)
            data_key = crypto.new_data_key()
            await conn.execute("DELETE FROM tokens WHERE account_id = $1", account_id)
            await conn.execute("SELECT forget_account_data($1)", account_id)
        else:
            old_params = crypto.KdfParams(
                row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_lanes"]
            )
            old = await kdf.derive(old_password, row["kdf_salt"], old_params)
            if not crypto.verifier_matches(row["verifier"], old.verifier):
                raise AccountError("the current password is wrong")
            try:
                data_key = crypto.unwrap_key(
                    old.kek, row["wrapped_key"], password_wrap_aad(account_id, username)
                )
            except crypto.DecryptionError:
                raise AccountError(
                    f"the stored key of device {username!r} does not open (the database row "
                    "was altered or damaged); give it a new one with the account's password "
                    "(--account ACCOUNT), or with --reset"
                ) from None
        await set_phone_credential(conn, kdf, params, row, new_password, data_key)
        return bool(row["paired"])


def refuse_reset(row: asyncpg.Record, username: str) -> None:
    """A reset (a new data key, the stored data deleted) only when the lost password was the
    one thing that opened the key; otherwise the words for what keeps the data."""
    account = row["account_name"]
    if not row["paired"]:
        raise AccountError(
            f"cannot reset {username!r}: account {account!r} still opens its data key with "
            "its own password, so nothing needs deleting; give the phone a new password "
            f"with the account's: `smsnodes-hub device passwd {username} --account "
            f"{account}`")
    if row["others"]:
        phones = ", ".join(row["others"])
        raise AccountError(
            f"cannot reset {username!r}: its password is also account {account!r}'s, and "
            f"its other phones ({phones}) hold the data key, which a reset would destroy for "
            f"them too; change it with the current password (`smsnodes-hub device passwd "
            f"{username}`), or remove the other phones (`smsnodes-hub device remove NAME`) "
            "and then reset, which deletes the account's stored messages")


async def set_phone_credential(
    conn: asyncpg.Connection, kdf: crypto.PasswordKdf, params: crypto.KdfParams,
    row: asyncpg.Record, new_password: str, data_key: bytes,
) -> None:
    """Give the phone (its `locked_phone` row) a new password wrapping `data_key`. A phone
    that shares its account's name gives the account the same new password."""
    salt = crypto.new_salt()
    keys = await kdf.derive(new_password, salt, params)
    await rewrap_phone(conn, row["account_id"], row["id"], row["username"], salt, params,
                       keys, data_key)
    if row["paired"]:
        await rewrap_account(conn, row["account_id"], row["account_name"], salt, params,
                             keys, data_key)


async def rewrap_phone(
    conn: asyncpg.Connection, account_id: int, device_id: int, username: str, salt: bytes,
    params: crypto.KdfParams, keys: crypto.PasswordKeys, data_key: bytes,
) -> None:
    """Store a new password credential of the phone (salt and derived keys of the new
    password), end its tokens and sessions, and tell every hub process, which drop its
    cached logins and close its sockets (see hub.py)."""
    await conn.execute(
        """UPDATE devices SET kdf_salt = $2, kdf_memory_kib = $3, kdf_iterations = $4,
               kdf_lanes = $5, verifier = $6, wrapped_key = $7,
               credential_epoch = credential_epoch + 1
             WHERE id = $1""",
        device_id, salt, params.memory_kib, params.iterations, params.lanes, keys.verifier,
        crypto.wrap_key(keys.kek, data_key, password_wrap_aad(account_id, username)),
    )
    await conn.execute("DELETE FROM tokens WHERE device_id = $1", device_id)
    await conn.execute("SELECT pg_notify('smsnodes_hub', $1)", f"credentials:{device_id}")


async def rewrap_account(
    conn: asyncpg.Connection, account_id: int, name: str, salt: bytes,
    params: crypto.KdfParams, keys: crypto.PasswordKeys, data_key: bytes,
) -> None:
    """Store a new password credential of the account (salt and derived keys of the new
    password), end its own tokens and tell every hub process."""
    await conn.execute(
        """UPDATE accounts SET kdf_salt = $2, kdf_memory_kib = $3, kdf_iterations = $4,
               kdf_lanes = $5, verifier = $6, wrapped_key = $7,
               credential_epoch = credential_epoch + 1
             WHERE id = $1""",
        account_id, salt, params.memory_kib, params.iterations, params.lanes, keys.verifier,
        crypto.wrap_key(keys.kek, data_key, password_wrap_aad(account_id, name)),
    )
    await conn.execute(
        """WITH gone AS (DELETE FROM tokens WHERE account_id = $1 AND device_id IS NULL
                         RETURNING id)
           SELECT pg_notify('smsnodes_hub', 'token:' || id) FROM gone""", account_id)
    await conn.execute("SELECT pg_notify('smsnodes_hub', $1)", f"account:{account_id}")
