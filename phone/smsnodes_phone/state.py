"""What the agent keeps on disk, readable by its user only (mode 0600).

- the token file: the session token of the latest ``auth_ok`` and nothing else;
- the state file (JSON): the (id, attempt) keys already taken, the SMS stored but not yet
  sent (a restart resumes them, skipping recipients already done and reporting the one
  the radio had when the agent stopped as interrupted), the outbox of reports
  and inbound SMS not yet confirmed by ``ok``, sent SMS waiting for a delivery report, and
  the inbound high-water mark.

Every write goes to a temporary file that replaces the old one, so a crash leaves either
the old state or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import orjson

from .frames import Frame

STATE_VERSION = 1
SEEN_KEPT = 5000  # (id, attempt) keys remembered; the hub never repeats one that old
FORWARDED_KEPT = 1000


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``; the file is created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is ignored for a file that already existed
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def write_token(path: Path, token: str) -> None:
    write_private(path, token.encode() + b"\n")


def forget_token(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class AgentState:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.existed = False
        self.seen: list[list[Any]] = []  # [id, attempt, fingerprint]
        self.jobs: list[dict[str, Any]] = []
        self.outbox: list[Frame] = []
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.inbound_mark: int | None = None
        self.inbound_pending: dict[str, dict[str, Any]] = {}
        self.inbound_confirmed: int | None = None
        self.forwarded: list[str] = []
        if path is not None and path.exists():
            self.existed = True
            self._load(orjson.loads(path.read_bytes()))

    def _load(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path}: not a state file of version {STATE_VERSION}")
        self.seen = [list(k) for k in data.get("seen", [])]
        self.jobs = list(data.get("jobs", []))
        self.outbox = list(data.get("outbox", []))
        self.deliveries = dict(data.get("deliveries", {}))
        self.inbound_mark = data.get("inboundMark")
        self.inbound_pending = dict(data.get("inboundPending", {}))
        self.inbound_confirmed = data.get("inboundConfirmed")
        self.forwarded = list(data.get("forwarded", []))

    def save(self) -> None:
        if self.path is None:
            return
        self.seen = self.seen[-SEEN_KEPT:]
        self.forwarded = self.forwarded[-FORWARDED_KEPT:]
        data = {
            "version": STATE_VERSION,
            "seen": self.seen,
            "jobs": self.jobs,
            "outbox": self.outbox,
            "deliveries": self.deliveries,
            "inboundMark": self.inbound_mark,
            "inboundPending": self.inbound_pending,
            "inboundConfirmed": self.inbound_confirmed,
            "forwarded": self.forwarded,
        }
        write_private(self.path, orjson.dumps(data))
