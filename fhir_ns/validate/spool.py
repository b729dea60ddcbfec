"""Where `validate` keeps what it finds while it reads: a temporary SQLite database, not lists in memory.

A bulk export holds hundreds of thousands of resources and each may have an issue (dom-6 alone is one per
resource), and the input profile (layer 5) can only place its problems once every file is read; the text
output then lists each file's issues by entry, the JSON output in the order they were found. SQLite sorts
both ways on disk, so memory stays the same whatever the size of the input. Each entry read is also noted
with how issues about it are named (`line 4 Observation/o1`), for the input profile's problems at the end.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_ns.fhir.problems import Severity
from fhir_ns.validate.issues import Issue

SEVERITIES: tuple[Severity, ...] = ("fatal", "error", "warning", "information")
ORDER = {s: i for i, s in enumerate(SEVERITIES)}
_BATCH = 2_000  # rows kept in memory before they are written
_ASCII_DIGITS = re.compile("[0-9]+")


@dataclass(frozen=True, slots=True)
class Located:
    """An issue placed in its file: the entry (or NDJSON line) it belongs to, and its full expression."""

    issue: Issue
    group: str  # "Bundle", "entry[3] Observation/o1", "line 4 Observation/o1", "" for the file itself
    expression: str  # Bundle.entry[3].resource.status ("" when the file could not be read)


@dataclass(frozen=True, slots=True)
class Place:
    """How issues about one entry are named: its file's report, the document's base type and the group."""

    report: int
    base: str
    group: str


class Sink(Protocol):
    """Where the layers put what they find about a file: a Spool, or a worker's record of it (`--jobs`)."""

    def add(self, report: int, phase: int, located: Located, order: int = 0) -> None: ...

    def place(self, file: str, entry: int | None, line: int | None, place: Place) -> None: ...


class Spool:
    """Located issues by file and in the order found, and the place of every entry read."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # a private temporary database on disk, removed when closed
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -16000;
            CREATE TABLE issue (
                report INTEGER, seq INTEGER, phase INTEGER, ord INTEGER, kind INTEGER, number INTEGER, grp TEXT,
                severity INTEGER, code TEXT, message TEXT, layer TEXT, path TEXT, expression TEXT
            );
            CREATE TABLE place (file TEXT, entry INTEGER, line INTEGER, report INTEGER, base TEXT, grp TEXT);
            """
        )
        self._issues: list[tuple[Any, ...]] = []
        self._places: list[tuple[Any, ...]] = []
        self._seq = 0
        self._indexed = False
        self.strict = False  # --strict: warnings are read back as errors
        self.counts: list[dict[Severity, int]] = []

    def new_report(self) -> int:
        self.counts.append(dict.fromkeys(SEVERITIES, 0))
        return len(self.counts) - 1

    def add(self, report: int, phase: int, located: Located, order: int = 0) -> None:
        """One issue of a file. `phase` orders issues as found: 0 syntax, 1 the other layers of each document,
        2 and 3 the input profile's (the classifier's problems, then this layer's own); within a phase, `order`
        and then the order of adding (a Bundle read entry by entry is checked in another order than it is
        reported in: `order` puts its issues where reading it whole finds them)."""
        self._seq += 1
        self._issues.append((report, self._seq, *_issue_row(phase, located, order)))
        self.counts[report][located.issue.severity] += 1
        if len(self._issues) >= _BATCH:
            self._flush()

    def replay(self, report: int, recorded: Recorder) -> None:
        """What a Recorder took in (a worker's, for a piece of a file), as if added here now."""
        counts = self.counts[report]
        seq = self._seq
        for row in recorded.issues:
            seq += 1
            self._issues.append((report, seq, *row))
            counts[SEVERITIES[row[5]]] += 1
        self._seq = seq
        self._places.extend(
            (file, entry, line, report, base, group) for file, entry, line, base, group in recorded.places
        )
        self._flush()

    def place(self, file: str, entry: int | None, line: int | None, place: Place) -> None:
        """Note where an entry was read (a later entry at the same location takes its place)."""
        self._places.append((file, _key(entry), _key(line), place.report, place.base, place.group))
        if len(self._places) >= _BATCH:
            self._flush()

    def find(self, file: str, entry: int | None, line: int | None) -> Place | None:
        """The place of the entry last read at this location, if any."""
        self._flush()
        if not self._indexed:
            self._db.execute("CREATE INDEX place_at ON place (file, entry, line)")
            self._indexed = True
        row = self._db.execute(
            "SELECT report, base, grp FROM place WHERE file = ? AND entry = ? AND line = ? ORDER BY rowid DESC LIMIT 1",
            (file, _key(entry), _key(line)),
        ).fetchone()
        return Place(*row) if row else None

    def issues(self, report: int, grouped: bool = False, least: Severity = "information") -> Iterator[Located]:
        """A file's issues: in the order found, or `grouped` as the text output lists them (the file itself
        first, then entries or lines in order, each by severity); `least`: the least severe one wanted."""
        self._flush()
        severity = "(CASE severity WHEN 2 THEN 1 ELSE severity END)" if self.strict else "severity"
        order = f"kind, number, grp, {severity}, phase, ord, seq" if grouped else "phase, ord, seq"
        cursor = self._db.execute(
            "SELECT grp, severity, code, message, layer, path, expression FROM issue "  # noqa: S608 (fixed text)
            f"WHERE report = ? AND severity <= ? ORDER BY {order}",
            (report, ORDER[least]),
        )
        for group, severity, code, message, layer, path, expression in cursor:
            named = SEVERITIES[severity]
            if self.strict and named == "warning":
                named = "error"
            yield Located(Issue(named, code, message, layer, path), group, expression)

    def severity_counts(self, report: int) -> dict[Severity, int]:
        """How many issues of each severity a file has (warnings counted as errors under --strict)."""
        counts = dict(self.counts[report])
        if self.strict:
            counts["error"] += counts["warning"]
            counts["warning"] = 0
        return counts

    def _flush(self) -> None:
        if self._issues:
            self._db.executemany(f"INSERT INTO issue VALUES ({', '.join('?' * 13)})", self._issues)
            self._issues = []
        if self._places:
            self._db.executemany("INSERT INTO place VALUES (?, ?, ?, ?, ?, ?)", self._places)
            self._places = []

    def close(self) -> None:
        self._db.close()


class Recorder:
    """Takes in what the layers find about one file, or a piece of one, as a Spool would (`Sink`), and keeps it
    in order as plain rows, for the Spool of another process to `replay` (`validate --jobs`)."""

    __slots__ = ("issues", "places")

    def __init__(self) -> None:
        self.issues: list[tuple[Any, ...]] = []
        self.places: list[tuple[Any, ...]] = []

    def add(self, report: int, phase: int, located: Located, order: int = 0) -> None:
        self.issues.append(_issue_row(phase, located, order))

    def place(self, file: str, entry: int | None, line: int | None, place: Place) -> None:
        self.places.append((file, _key(entry), _key(line), place.base, place.group))

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.issues, self.places)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.issues, self.places = state


def _issue_row(phase: int, located: Located, order: int) -> tuple[Any, ...]:
    """An issue as the Spool stores it, but for its report and its sequence number."""
    issue = located.issue
    kind, number = _group_order(located.group)
    return (phase, order, kind, number, located.group, ORDER[issue.severity], issue.code) + (
        issue.message,
        issue.layer,
        issue.path,
        located.expression,
    )


def _key(number: int | None) -> int:
    return -1 if number is None else number


def _group_order(group: str) -> tuple[int, int]:
    """The file itself and the Bundle first, then entries (or NDJSON lines) in their order (by the first
    number in the group's name; ties by the name)."""
    if group.isascii():
        first = _ASCII_DIGITS.search(group)
        digits = [first.group()] if first else []
    else:  # str.isdigit, as the text output has always read them
        digits = "".join(c if c.isdigit() else " " for c in group).split()
    if not digits:
        return (0, 0)
    return (1, int(digits[0]) if len(digits[0]) <= 18 else 10**18)  # a line or entry number is never that long
