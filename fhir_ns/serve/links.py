"""Short-lived signed links from a CDS card to the patient's timeline page.

A link carries no patient data: its token is a random id plus an HMAC-SHA256 signature of that id.
The service keeps what the link opens (patient id and page parameters) in SQLite until it expires,
under a hash of the id, so neither the URL (browser history, proxy logs) nor a copy of the database
alone is enough to open a page. Why not SMART App Launch: see README, "CDS service security".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fhir_ns.errors import ConfigError

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
DEFAULT_TTL_S = 900
_DOMAIN = b"fhir-ns timeline link\x00"  # keeps these signatures apart from any other use of the secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LinkSigner:
    """Issues and resolves timeline links; one per service, safe to share between threads."""

    def __init__(self, secret: bytes, ttl_s: int, db_path: Path, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"links: the secret must have at least {MIN_SECRET_BYTES} bytes")
        if ttl_s < 1:
            raise ConfigError("links.ttl_s: must be at least 1 second")
        self._secret = secret
        self.ttl_s = ttl_s
        self.clock = clock
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # patient ids live in this file: made readable by the service's user only (SQLite gives its -wal and
        # -shm files the same mode)
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(db_path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # no fsync per card: a link lost in a crash is reissued by the next call
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS timeline_link (id_hash TEXT PRIMARY KEY, patient_id TEXT NOT NULL,"
            " payload TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS timeline_link_expiry ON timeline_link (expires_at)")
        self._lock = threading.Lock()
        self._pruned = float("-inf")

    def issue(self, patient_id: str, payload: Mapping[str, Any]) -> str:
        """A URL-safe token that opens this patient's page with `payload` (JSON values) until it expires."""
        link_id = secrets.token_urlsafe(16)
        now = self.clock()
        with self._lock:
            if now - self._pruned >= PRUNE_EVERY_S:  # expired links go in one sweep now and then, not per card
                self._db.execute("DELETE FROM timeline_link WHERE expires_at <= ?", (now,))
                self._pruned = now
            self._db.execute(
                "INSERT INTO timeline_link VALUES (?, ?, ?, ?)",
                (_id_hash(link_id), patient_id, json.dumps(dict(payload)), now + self.ttl_s),
            )
        return f"{link_id}.{self._signature(link_id)}"

    def resolve(self, token: str) -> dict[str, Any] | None:
        """`{"patient_id": ..., "payload": {...}}` for a valid, unexpired token; None for anything else."""
        link_id, dot, signature = token.partition(".")
        if not (dot and link_id and token.isascii()):
            return None
        if not hmac.compare_digest(signature.encode(), self._signature(link_id).encode()):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT patient_id, payload FROM timeline_link WHERE id_hash = ? AND expires_at > ?",
                (_id_hash(link_id), self.clock()),
            ).fetchone()
        if row is None:
            return None
        return {"patient_id": row[0], "payload": json.loads(row[1])}

    def _signature(self, link_id: str) -> str:
        return _b64(hmac.new(self._secret, _DOMAIN + link_id.encode(), hashlib.sha256).digest())


PRUNE_EVERY_S = 60  # an expired link is refused by `resolve` at once; its row goes at the next sweep


def _id_hash(link_id: str) -> str:
    return hashlib.sha256(link_id.encode()).hexdigest()


_LINK_KEYS = {"secret_file", "ttl_s"}


def load_link_signer(section: Mapping[str, Any] | None, base_dir: Path, state_dir: Path) -> LinkSigner:
    """The signer from the `links:` section: `secret_file` (relative to `base_dir`), else a secret made once in `state_dir`."""
    section = section or {}
    if not isinstance(section, Mapping):
        raise ConfigError("links: must be a mapping")
    unknown = set(section) - _LINK_KEYS
    if unknown:
        raise ConfigError(f"links: unknown key(s) {sorted(unknown)}; expected some of {sorted(_LINK_KEYS)}")
    ttl = section.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 86400:
        raise ConfigError(f"links.ttl_s: must be whole seconds from 1 to 86400, not {ttl!r}")
    if section.get("secret_file") is not None:
        secret = _read_secret(base_dir / str(section["secret_file"]), "links.secret_file")
    else:
        secret = _state_secret(state_dir / "link-secret")
    return LinkSigner(secret, ttl, state_dir / "cds-links.sqlite")


def _read_secret(path: Path, what: str) -> bytes:
    try:
        secret = path.read_bytes().strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path.name}: {exc.strerror}") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{what}: {path.name} holds {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed")
    if mode & 0o077:
        log.warning("%s %s can be read by other users than the service's (mode %o)", what, path.name, mode & 0o777)
    return secret


def _state_secret(path: Path) -> bytes:
    """The secret kept in the state directory, made on first start (mode 0600); several workers agree on one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)  # atomic and refuses to overwrite: the first worker's secret wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return _read_secret(path, "the link secret in the state directory")
