"""The sync job's memory, in SQLite: the server's watermark, each patient's input hash, what was written.

Each patient's outcome is committed in one SQLite transaction after the server accepted its write,
so a run killed at any moment resumes without duplicates or lost findings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from fhir_ns.errors import ConfigError

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patient (
    id TEXT PRIMARY KEY,
    input_hash TEXT NOT NULL,
    ruleset TEXT NOT NULL,
    revisit_on TEXT,
    synced_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS written (
    patient TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    identifier_system TEXT NOT NULL,
    identifier_value TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    resource BLOB NOT NULL,
    PRIMARY KEY (patient, resource_type, identifier_system, identifier_value)
);
"""


@dataclass(frozen=True, slots=True)
class Written:
    """A DetectedIssue or CarePlan fhir-ns wrote, as it wrote it."""

    resource_type: str
    system: str
    value: str
    code: str
    status: str
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PatientState:
    input_hash: str
    ruleset: str
    revisit_on: date | None


class State:
    """Open (or create) the state for one server; a state file belongs to the server it was made for."""

    def __init__(self, path: Path | str, base_url: str) -> None:
        self.path = str(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the state database {path}: {exc}") from exc
        known = self.get_meta("base_url")
        if known is None:
            self.set_meta("base_url", base_url)
            self.set_meta("schema", SCHEMA_VERSION)
        elif known != base_url:
            raise ConfigError(f"the state {path} belongs to {known}, not {base_url}; use another --state file")

    def close(self) -> None:
        self.db.close()

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def watermark(self) -> str | None:
        """The server time up to which every change has been processed."""
        return self.get_meta("watermark")

    # -- patients --------------------------------------------------------------------------------
    def patient(self, pid: str) -> PatientState | None:
        row = self.db.execute("SELECT input_hash, ruleset, revisit_on FROM patient WHERE id = ?", (pid,)).fetchone()
        if row is None:
            return None
        return PatientState(row[0], row[1], date.fromisoformat(row[2]) if row[2] else None)

    def known_patients(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM patient")}

    def due_patients(self, today: date) -> set[str]:
        """Patients whose answer may have changed with time alone (a window closed)."""
        rows = self.db.execute(
            "SELECT id FROM patient WHERE revisit_on IS NOT NULL AND revisit_on <= ?", (today.isoformat(),)
        )
        return {r[0] for r in rows}

    def written(self, pid: str) -> list[Written]:
        rows = self.db.execute(
            "SELECT resource_type, identifier_system, identifier_value, code, status, resource FROM written "
            "WHERE patient = ? ORDER BY resource_type, identifier_value",
            (pid,),
        )
        return [Written(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]

    def commit_patient(
        self, pid: str, input_hash: str, ruleset: str, revisit_on: date | None, synced_at: str, written: list[Written]
    ) -> None:
        """Record one patient's completed sync, all or nothing."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO patient(id, input_hash, ruleset, revisit_on, synced_at) VALUES(?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET input_hash = excluded.input_hash, ruleset = excluded.ruleset, "
                "revisit_on = excluded.revisit_on, synced_at = excluded.synced_at",
                (pid, input_hash, ruleset, revisit_on.isoformat() if revisit_on else None, synced_at),
            )
            for w in written:
                self.db.execute(
                    "INSERT INTO written VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(patient, resource_type, "
                    "identifier_system, identifier_value) DO UPDATE SET code = excluded.code, status = excluded.status, "
                    "resource = excluded.resource",
                    (pid, w.resource_type, w.system, w.value, w.code, w.status, orjson.dumps(w.resource)),
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
