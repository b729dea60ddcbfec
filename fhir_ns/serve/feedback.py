"""The service's memory (SQLite): the cards it issued, the feedback on them, and the cards snoozed.

A card is issued with a random uuid and remembered with its patient and its key (what it says and the
evidence it rests on); feedback names only the uuid. An overridden card snoozes its key for that
patient: the same card on the same evidence is not shown again until the snooze ends, while a card on
new evidence (a later creatinine, another trough) has another key and is shown.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_ns.errors import OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    card TEXT PRIMARY KEY, service TEXT NOT NULL, patient TEXT NOT NULL, card_key TEXT NOT NULL, issued REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_when ON issued (issued);
CREATE TABLE IF NOT EXISTS feedback (
    card TEXT NOT NULL, service TEXT NOT NULL, outcome TEXT NOT NULL, reason_system TEXT, reason_code TEXT,
    user_comment TEXT, accepted TEXT, outcome_timestamp TEXT, received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snoozed (
    patient TEXT NOT NULL, card_key TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (patient, card_key)
);
"""
KEEP_ISSUED_S = 14 * 86400  # feedback on a card older than this is not expected (clients send it at once)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One feedback item as the client sent it (CDS Hooks `feedback[]`)."""

    card: str
    outcome: str  # accepted | overridden
    outcome_timestamp: str
    reason_system: str | None = None
    reason_code: str | None = None
    user_comment: str | None = None
    accepted: tuple[str, ...] = ()


class FeedbackStore:
    """Issued cards, feedback and snoozes in one SQLite file, shared by the server's threads."""

    def __init__(self, path: Path, snooze_days: int) -> None:
        self.snooze_s = snooze_days * 86400.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OutputError(f"the service state {path} cannot be opened: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def snoozed(self, patient: str, keys: Iterable[str], now: float | None = None) -> set[str]:
        """Which of `keys` are snoozed for the patient now."""
        keys = list(keys)
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT card_key FROM snoozed WHERE patient = ? AND until > ? AND card_key IN ({marks})",
                [patient, time.time() if now is None else now, *keys],
            ).fetchall()
        return {r[0] for r in rows}

    def issue(self, service: str, patient: str, cards: Iterable[tuple[str, str]]) -> None:
        """Remember the cards (uuid, key) just sent for a patient, so feedback on them can be understood."""
        now = time.time()
        rows = [(card, service, patient, key, now) for card, key in cards]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO issued VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("DELETE FROM issued WHERE issued < ?", (now - KEEP_ISSUED_S,))
            self._db.execute("COMMIT")

    def record(self, service: str, outcomes: Iterable[Outcome], now: float | None = None) -> int:
        """Store the feedback; an override snoozes its card's key for its patient. Returns how many items named
        a card this service issued."""
        now = time.time() if now is None else now
        known = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for o in outcomes:
                    self._db.execute(
                        "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            o.card, service, o.outcome, o.reason_system, o.reason_code, o.user_comment,
                            ",".join(o.accepted) or None, o.outcome_timestamp, now,
                        ),
                    )  # fmt: skip
                    row = self._db.execute(
                        "SELECT patient, card_key FROM issued WHERE card = ? AND service = ?", (o.card, service)
                    ).fetchone()
                    if row is None:
                        continue
                    known += 1
                    if o.outcome == "overridden" and self.snooze_s > 0:
                        self._db.execute(
                            "INSERT OR REPLACE INTO snoozed VALUES (?, ?, ?)", (row[0], row[1], now + self.snooze_s)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return known

    def outcomes(self, card: str) -> list[dict[str, Any]]:
        """The feedback stored for a card (for audit)."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM feedback WHERE card = ? ORDER BY received", (card,))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
