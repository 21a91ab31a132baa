"""Random keys the hub keeps in files under `database.data_dir` (the dashboard's session key,
the webhook secrets' key): made on first use, readable by the hub's user only."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


class KeyFileError(Exception):
    """A key file that cannot be used; the message names it and what deleting it costs."""


def load_key_file(path: Path, *, what: str, loss: str) -> bytes:
    """The random key in `path`, made (0600) on first use. Several processes starting at once
    agree on one key: each writes its own file and links it into place, and only the first
    link succeeds. `what` names the key in messages; `loss` says what a new key costs."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            try:
                os.link(temporary, path)
                log.info("created %s %s", what, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users: chmod 600 it", path)
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) < 32:
        raise KeyFileError(f"{path} does not hold a key of 64 hex digits; delete it to "
                           f"make a new one ({loss})")
    return key
