"""A large Bundle validated one entry at a time (`fhir_ns.fhir.stream`), in memory that does not grow with it.

Each entry goes through the six layers as soon as it is read, as the entry of a Bundle read whole would; its
issues get an `order` that puts them where reading the Bundle whole reports them (layer by layer, the entries in
their order between the Bundle's own elements before and after `entry`; layer 1's in the order of its stack). What
needs the whole Bundle is kept small or on disk:

- the Bundle's own members (all but `entry`) are kept as read and checked at the end, with a marker where the
  entries were, which tells where their issues go among the Bundle's own;
- the Bundle-wide invariants (bdl-*) are evaluated on a reduced Bundle: its own members and a few of its entries,
  in their order, cut down to what those invariants read (`fullUrl`, `request`, `response`, `search`, the
  resource's type and versionId): the first entry, two of each kind of entry (`_kind`: which of those are
  present, the resource type, the request method, a version-specific fullUrl) and, when bdl-7 finds two entries
  with the same fullUrl and versionId, two of them. Every such invariant is true of the reduced Bundle exactly
  when it is of the whole (tests/test_validate_bundle_stream.py checks it on generated Bundles);
- fullUrls (for bdl-7 and the output profile's Provenance links) and the entries holding what fhir-ns writes
  (checked by the output profile once every fullUrl is known) go to a temporary SQLite database.

JSON that breaks off or goes wrong in the middle is an error saying where (line, column, entry); what was read
before it is reported as usual, and the Bundle-wide checks are not made.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing, suppress
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from fhir_ns.fhir.reader import Entry, entry_resources
from fhir_ns.fhir.stream import Element, Malformed, Member, members
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import Node, Visitor, visit_element, walk
from fhir_ns.validate.input_profile import InputProfile
from fhir_ns.validate.invariants import check_element_invariants, check_invariants, is_plain
from fhir_ns.validate.issues import Issue, join, resource_name
from fhir_ns.validate.native import Defer, bdl_7_key, model
from fhir_ns.validate.output_profile import check_output_entry, writes
from fhir_ns.validate.spool import Located, Place
from fhir_ns.validate.structure import check_bundle_shell, check_resource
from fhir_ns.validate.syntax import UTF8_BOM, canonical, check_resource_types, parse_json, scan

if TYPE_CHECKING:
    from fhir_ns.validate.runner import FileReport, Validator

_MARKER = "fhirNsEntriesHere"  # an element no FHIR version has: where the entries were, for layer 2
_BATCH = 2_000
# Where an issue goes within its phase: (part << 44) + the entry's index (counted down where layer 1's stack
# meets the entries last first)
_LAST = (1 << 43) - 1
# layer 1: the byte order mark, the Bundle's own members after `entry`, the entries (last first), the members
# before `entry`, the types of the entries' resources (last first), those of the Bundle's contained resources
BOM, AFTER, ENTRIES, BEFORE, ENTRY_TYPES, OWN_TYPES, BROKEN = range(7)
# layers 2-6 (phase 1), as the Bundle read whole reports them: each layer in turn, and in it the Bundle's own
# elements before `entry` (the Bundle itself first), the entries, the elements after; layer 2 has each entry's
# resource after all that
STRUCTURE, BINDING, OTHER_VERSION, INVARIANT, OUTPUT = range(5)
OWN_BEFORE, IN_ENTRY, OWN_AFTER, ENTRY_RESOURCE = range(4)
# the entry members bdl-* invariants read (with their `_x` twins)
_READ = ("fullUrl", "request", "response", "search", "resource")
_KEPT = frozenset({*_READ, *(f"_{k}" for k in _READ), "resourceType"})


def _order(part: int, index: int = 0) -> int:
    return (part << 44) + index


def _layer(layer: int, where: int, index: int = 0) -> int:
    return _order(layer * 4 + where, index)


class StreamedBundle:
    """One large Bundle file through the layers of a Validator, entry by entry."""

    def __init__(self, validator: Validator, report: FileReport, profile: InputProfile) -> None:
        self.validator = validator
        self.spec = validator.spec
        self.report = report
        self.profile = profile
        self.members: list[Member | None] = []  # None: where the entries were
        self.bundle: dict[str, Any] = {"resourceType": "Bundle"}  # its own members, as far as read
        self.kinds: dict[tuple[Any, ...], list[int]] = {}
        self.kept: dict[int, Any] = {}  # the entries of the reduced Bundle, cut down, by index
        self.model = model("r5" if self.spec.version == "R5" else "r4")
        self.db: sqlite3.Connection | None = None  # made when first needed
        self.rows: dict[str, list[tuple[Any, ...]]] = {"url": [], "twin": [], "written": []}
        self.broken: Malformed | None = None
        self.bom = False
        self.entries_sound = True  # layer 2 finds nothing in any entry's own elements (`request`, `fullUrl` ...)

    def read(self, fh: BinaryIO, name: str, progress: Callable[[int], None] | None) -> None:
        """Validate the Bundle in `fh` (file `name`, open); raises OSError as reading does."""
        done = 0
        self.bom = fh.peek(3)[:3] == UTF8_BOM  # type: ignore[attr-defined]
        try:
            for part in members(fh):
                if isinstance(part, Member):
                    self.member(part)
                    continue
                self.entry(part, name)
                if progress is not None and not part.index & 1023:
                    progress(part.offset - done)
                    done = part.offset
        except Malformed as exc:
            self.broken = exc
        if progress is not None:
            progress(max(0, _size(name) - done))
        self.finish()

    # -- the Bundle's own members ---------------------------------------------------------------------
    def member(self, part: Member) -> None:
        self.members.append(part)
        if part.key == "entry" and None in self.members:
            return  # a second `entry`: said at the end
        with suppress(orjson.JSONDecodeError):  # layer 1 says why, at the end
            self.bundle[part.key] = orjson.loads(part.value)

    # -- one entry ------------------------------------------------------------------------------------
    def entry(self, part: Element, name: str) -> None:
        """One entry through the layers (the Bundle-wide ones at the end)."""
        if not self.members or self.members[-1] is not None:
            self.members.append(None)
        v = self.validator
        index, text = part.index, part.text
        at = f"entry[{index}]"
        resource_text = None  # the resource's JSON text when layers 1-3 are proven to find nothing in it
        with v._timed("syntax"):
            value = canonical(text)
            plain = value is not None and is_plain(text)
            if value is not None:
                resource = value.get("resource")
                if type(resource) is dict:
                    resource_text = orjson.dumps(resource)
                    if not v.proven_resource(resource, resource_text):
                        resource_text = None
                parsed = scan({k: x for k, x in value.items() if k != "resource"} if resource_text else value, 3)
                value = value if parsed.value is not None else None
            else:
                parsed = parse_json(text, depth=3)
                value = parsed.value
            group = _entry_group(index, value)
            self._place(0, _order(ENTRIES, _LAST - index), parsed.issues, group, at)
            if value is None and text != b"null":
                return  # not to be read further (the issues say why)
            resource = value.get("resource") if isinstance(value, dict) else None
            if isinstance(value, dict) and "resource" in value and resource_text is None:
                types = check_resource_types(resource, self.spec.is_resource_type, join(at, "resource"))
                self._place(0, _order(ENTRY_TYPES, _LAST - index), types, group, "")
        if isinstance(resource, dict):
            self.report.resources += 1
        proven = resource_text is not None
        shell = {k: x for k, x in value.items() if k != "resource"} if isinstance(value, dict) else value
        with v._timed("structure"):
            found = _renumbered(check_bundle_shell(_one_entry(shell), self.spec.version), index)
            typed = isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
            own = check_resource(resource, self.spec.version) if typed and not proven else []  # type: ignore[arg-type]
            own = [i.under(join(at, "resource")) for i in own]
        self.entries_sound = self.entries_sound and not found
        self._place(1, _layer(STRUCTURE, IN_ENTRY, index), found, group, "")
        self._place(1, _layer(STRUCTURE, ENTRY_RESOURCE, index), own, group, "")
        with v._timed("binding"):
            nodes: list[Node] = []
            visit_element(self.bundle, "entry", index, shell if proven else value, self.spec, _into(nodes))
            bindings = check_bindings(nodes, self.spec)
        self._place(1, _layer(BINDING, IN_ENTRY, index), bindings, group, "")
        with v._timed("structure"):
            other = v.other_version(resource, join(at, "resource"), found + own + bindings)
        self._place(1, _layer(OTHER_VERSION, IN_ENTRY, index), [other] if other else [], group, "")
        with v._timed("invariant"):
            invariants = check_element_invariants(self.bundle, "entry", index, value, self.spec, plain)
        self._place(1, _layer(INVARIANT, IN_ENTRY, index), invariants, group, "")
        with v._timed("output-profile"):
            self._note(index, value, group)
        with v._timed("input-profile"):
            for read in entry_resources(name, index, value, []):
                self._input(read, resource_text if read.resource is resource else None, value)
        self._kind(index, value)

    def _input(self, read: Entry, text: bytes | None, entry: Any) -> None:
        """One resource of an entry into the input profile, as `Validator._entry` does for a Bundle read whole."""
        loc = read.location
        issues = [self.validator._issue(problem) for problem in self.profile.add(read, text)]
        group = _entry_group(loc.entry, entry) if loc.entry is not None else resource_name(self.bundle)
        self.report.spool.place(loc.file, loc.entry, loc.line, Place(self.report.index, "Bundle", group))
        for issue in issues:
            self.report.spool.add(self.report.index, 3, Located(issue, group, issue.expression("Bundle")))

    def _note(self, index: int, value: Any, group: str) -> None:
        """What the Bundle-wide checks need of an entry: its fullUrl, and the entry itself if fhir-ns wrote it."""
        if not isinstance(value, dict):
            return
        url = value.get("fullUrl")
        resource = value.get("resource")
        try:
            key = bdl_7_key(value, self.model)
        except Defer:  # fhirpathpy decides on the reduced Bundle, where this entry is
            key = orjson.dumps(_cut(value)).decode()
        if isinstance(url, str) and isinstance(resource, dict):
            rtype = resource.get("resourceType")
            self._row("url", (url, index, rtype if isinstance(rtype, str) else "", key))
        elif key is not None:
            self._row("url", (None, index, None, key))
        if key is not None:
            self._row("twin", (index, orjson.dumps(_cut(value))))
        if writes(value):
            self._row("written", (index, orjson.dumps(value), group))

    def _kind(self, index: int, value: Any) -> None:
        """Keep the entry for the reduced Bundle if it is the first, or one of the first two of its kind."""
        seen = self.kinds.setdefault(_kind(value), [])
        if index == 0 or len(seen) < 2:
            seen.append(index)
            self.kept[index] = _cut(value)

    # -- at the end -----------------------------------------------------------------------------------
    def finish(self) -> None:
        """The Bundle's own members, the Bundle-wide invariants and the output profile, once every entry is read."""
        v = self.validator
        if self.broken is not None:
            self._broken(self.broken)
        elif self._own_members():
            with v._timed("output-profile"):
                self._written()
        self.report.resources += 1
        if self.db is not None:
            self.db.close()

    def _broken(self, exc: Malformed) -> None:
        where = f" (entry[{exc.element}])" if exc.element is not None else ""
        message = (
            f"malformed JSON at line {exc.line} column {exc.column}{where}: {exc.reason}; the rest of the Bundle "
            "is not read and the Bundle-wide checks are not made"
        )
        group = f"entry[{exc.element}]" if exc.element is not None else ""
        if self.bom:
            self._add(0, _order(BOM), parse_json(UTF8_BOM + b"{}").issues[0], "")
        self._add(0, _order(BROKEN), Issue("error", "structure", message, "syntax"), group)
        with self.validator._timed("output-profile"):
            self._written()

    def _own_members(self) -> bool:
        """Layers 1-4 on the Bundle's own members; False when they cannot be read."""
        v = self.validator
        streamed = None in self.members
        pieces = [
            b'"entry":[null]' if m is None else m.key_text + b":" + m.value
            for m in self.members
            if m is None or not (streamed and m.key == "entry")
        ]
        with v._timed("syntax"):
            parsed = parse_json(b"{" + b",".join(pieces) + b"}")
            value = parsed.value
            issues = parsed.issues
            if streamed:
                marker = next((i for i, x in enumerate(issues) if x.path == "entry[0]"), len(issues))
                after, before = issues[:marker], issues[marker + 1 :]
            else:
                after, before = issues, []
            types = check_resource_types(value, self.spec.is_resource_type) if value is not None else []
        group = resource_name(value) if isinstance(value, dict) else ""
        if self.bom:
            self._add(0, _order(BOM), parse_json(UTF8_BOM + b"{}").issues[0], group)
        self._place(0, _order(AFTER), after, group, "")
        self._place(0, _order(BEFORE), before, group, "")
        self._place(0, _order(OWN_TYPES), types, group, "")
        for member in self.members:
            if member is not None and member.key == "entry" and streamed:
                issue = Issue(
                    "error",
                    "structure",
                    "duplicate key 'entry': JSON readers keep only one of them (the first is read here)",
                    "syntax",
                    "entry",
                )
                self._add(0, _order(BEFORE), issue, group)
        if not isinstance(value, dict):
            return False
        keys = list(value)
        at = keys.index("entry") if streamed else len(keys)

        def where(path: str) -> int:
            first = path.split(".", 1)[0].split("[", 1)[0]
            return OWN_BEFORE if not first or first not in value or keys.index(first) < at else OWN_AFTER

        if streamed:
            value["entry"] = [{_MARKER: True}]
        with v._timed("structure"):
            found = check_bundle_shell(value, self.spec.version)
            marker = next((i for i, x in enumerate(found) if x.path == f"entry[0].{_MARKER}"), len(found))
            if streamed and found == [found[marker]] and self.entries_sound:
                # fhir.resources checks a Bundle's own required elements only when nothing else in it is wrong,
                # which the marker is: checked again without it
                del value["entry"]
                found = [*check_bundle_shell(value, self.spec.version), found[marker]]
                marker = len(found) - 1
        self._place(1, _layer(STRUCTURE, OWN_BEFORE), found[:marker], group, "")
        self._place(1, _layer(STRUCTURE, OWN_AFTER), found[marker + 1 :], group, "")
        if streamed:
            kept = self.kept | self._twins()
            value["entry"] = [kept[i] for i in sorted(kept)]
        with v._timed("binding"):
            bindings = [i for i in check_bindings(walk(value, self.spec), self.spec) if not i.path.startswith("entry[")]
        with v._timed("invariant"):
            invariants = [i for i in check_invariants(value, self.spec) if not i.path.startswith("entry[")]
        for layer, issues in ((BINDING, bindings), (INVARIANT, invariants)):
            for issue in issues:
                self._add(1, _layer(layer, where(issue.path)), issue, group)
        self.bundle = value
        return True

    def _twins(self) -> dict[int, Any]:
        """Two entries with the same fullUrl and versionId (bdl-7), if there are any."""
        self._flush()
        assert self.db is not None
        row = self.db.execute(
            "SELECT key FROM url WHERE key IS NOT NULL GROUP BY key HAVING COUNT(*) > 1 LIMIT 1"
        ).fetchone()
        if row is None:
            return {}
        found = self.db.execute("SELECT entry FROM url WHERE key = ? ORDER BY entry LIMIT 2", row).fetchall()
        return {index: self._reread(index) for (index,) in found}

    def _reread(self, index: int) -> Any:
        assert self.db is not None
        (cut,) = self.db.execute("SELECT cut FROM twin WHERE entry = ?", (index,)).fetchone()
        return orjson.loads(cut)

    def _written(self) -> None:
        """The output profile on the entries fhir-ns wrote, now that every fullUrl is known."""
        self._flush()
        db = self.db
        assert db is not None
        db.execute("CREATE INDEX IF NOT EXISTS url_at ON url (url)")

        def kind_of(url: str) -> str | None:
            row = db.execute("SELECT type FROM url WHERE url = ? ORDER BY entry DESC LIMIT 1", (url,)).fetchone()
            return None if row is None else str(row[0])

        kind = self.bundle.get("type")
        with closing(db.execute("SELECT entry, text, grp FROM written ORDER BY entry")) as rows:
            for index, text, group in rows.fetchall():
                issues = check_output_entry(orjson.loads(text), index, kind, kind_of, self.validator.rulesets)
                self._place(1, _layer(OUTPUT, IN_ENTRY, index), issues, group, "")

    # -- keeping ----------------------------------------------------------------------------------------
    def _row(self, table: str, row: tuple[Any, ...]) -> None:
        rows = self.rows[table]
        rows.append(row)
        if len(rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.db is None:
            self.db = sqlite3.connect("")  # a private temporary database on disk
            self.db.executescript(
                """
                PRAGMA journal_mode = OFF;
                PRAGMA synchronous = OFF;
                CREATE TABLE url (url TEXT, entry INTEGER, type TEXT, key TEXT);
                CREATE TABLE twin (entry INTEGER PRIMARY KEY, cut BLOB);
                CREATE TABLE written (entry INTEGER, text BLOB, grp TEXT);
                """
            )
        for table, rows in self.rows.items():
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)  # noqa: S608
                rows.clear()

    def _place(self, phase: int, order: int, issues: list[Issue], group: str, prefix: str) -> None:
        for issue in issues:
            self._add(phase, order, issue.under(prefix) if prefix else issue, group)

    def _add(self, phase: int, order: int, issue: Issue, group: str) -> None:
        located = Located(issue, group, issue.expression("Bundle"))
        self.report.spool.add(self.report.index, phase, located, order)


def _one_entry(entry: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [entry]}


def _renumbered(issues: list[Issue], index: int) -> list[Issue]:
    """The issues of `entry[0]` of a one-entry Bundle, as issues of `entry[index]`."""
    out = []
    for issue in issues:
        if issue.path == "entry[0]" or issue.path.startswith(("entry[0].", "entry[0][")):
            path = f"entry[{index}]{issue.path[len('entry[0]') :]}"
            out.append(Issue(issue.severity, issue.code, issue.message, issue.layer, path))
    return out


def _entry_group(index: int, entry: Any) -> str:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    return " ".join(x for x in (f"entry[{index}]", resource_name(resource)) if x)


def _into(nodes: list[Node]) -> Visitor:
    return lambda *node: nodes.append(Node(*node))


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:
        return 0


def _present(entry: dict[str, Any], key: str) -> bool:
    """Whether FHIRPath finds `key` (or `_key`) in the entry: a value that is not null or an empty array."""
    return any(entry.get(k) not in (None, []) for k in (key, f"_{key}"))


def _kind(entry: Any) -> tuple[Any, ...]:
    """What the Bundle-wide invariants can tell of an entry: which members it has, its resource's type, its
    request's method, whether its fullUrl names a version."""
    if not isinstance(entry, dict):
        return ("not an object", type(entry).__name__)
    resource = entry.get("resource")
    request = entry.get("request")
    url = entry.get("fullUrl")
    return (
        tuple(k for k in _READ if _present(entry, k)),
        tuple(k for k in _KEPT if k in entry),
        repr(resource.get("resourceType"))[:80] if isinstance(resource, dict) else type(resource).__name__,
        isinstance(resource, dict) and isinstance(resource.get("meta"), dict),
        repr(request.get("method"))[:40] if isinstance(request, dict) else type(request).__name__,
        isinstance(request, dict) and "_method" in request,
        "/_history/" in url if isinstance(url, str) else type(url).__name__,
    )


def _cut(entry: Any) -> Any:
    """An entry cut down to what the Bundle-wide invariants read."""
    if not isinstance(entry, dict):
        return entry
    out = {k: x for k, x in entry.items() if k in _KEPT}
    resource = out.get("resource")
    if isinstance(resource, dict):
        kept = {k: resource[k] for k in ("resourceType",) if k in resource}
        meta = resource.get("meta")
        if isinstance(meta, dict):
            kept["meta"] = {k: meta[k] for k in ("versionId", "_versionId") if k in meta}
        out["resource"] = kept
    return out
