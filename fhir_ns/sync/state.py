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

from fhir_ns.errors import ConfigError, OutputError

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
    """A DetectedIssue, CarePlan or measure Observation fhir-ns wrote, as it wrote it."""

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
    """Open (or create) the state for one server; a state file belongs to the server it was made for.

    `read_only` (dry runs) works on a copy in memory: the file is neither created nor changed.
    `rebind` moves a state to a new base URL (the same server at a new address). A state that never
    recorded a sync (a first run that could not reach its server) is taken over by any base URL."""

    def __init__(self, path: Path | str, base_url: str, *, read_only: bool = False, rebind: bool = False) -> None:
        self.path = str(path)
        try:
            self.db = _in_memory_copy(self.path) if read_only else sqlite3.connect(self.path, isolation_level=None)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise ConfigError(f"{path} is not a fhir-ns state file (it holds other tables); give another --state")
            if not read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:  # cannot open or write the file
            raise OutputError(f"cannot open the state {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database at all
            raise ConfigError(f"{path} is not a fhir-ns state file ({exc}); give another --state") from exc
        known = self.get_meta("base_url")
        if known is None or (known != base_url and (rebind or self._never_synced())):
            self.set_meta("base_url", base_url)
            self.set_meta("schema", SCHEMA_VERSION)
        elif known != base_url:
            raise ConfigError(
                f"the state {path} belongs to {known}, not {base_url}: for another server give another --state file; "
                "if it is the same server at a new address, add --rebind-state"
            )

    def close(self) -> None:
        self.db.close()

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._writing():
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _never_synced(self) -> bool:
        return self.watermark is None and not self.db.execute("SELECT 1 FROM patient LIMIT 1").fetchone()

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
        with self._writing():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write the disk refuses (full, read-only) stops the run with the state's name; what was committed stays."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise OutputError(f"cannot write the state {self.path}: {exc}") from exc


def _in_memory_copy(path: str) -> sqlite3.Connection:
    """The state as it is now, in memory (empty if there is no file): a dry run changes nothing on disk."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    if Path(path).exists():
        source = sqlite3.connect(path)
        try:
            source.backup(memory)
        finally:
            source.close()
    return memory
