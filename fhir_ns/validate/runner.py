"""Run the layers over files, one document (a file, or an NDJSON line) at a time: each through layers 1-4 and
6, its entries into layer 5, whose problems come once every file is read. What is found goes to the Spool.
A Bundle file larger than STREAM_ABOVE is read one entry at a time instead (streamed.py), reported alike; with
`jobs` above 1, pieces of the input go through the layers in worker processes (parallel.py), reported alike.

Every layer runs on every document even when an earlier one found errors; only a document that
cannot be parsed (or is too deep to walk safely) stops after layer 1. A document proven clean for layers
1-3 (`Validator._proven`) goes straight to layer 4.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import NDJSON_SUFFIXES, Entry, counted, document_entries, expand_paths
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.fhir.stream import starts_as_bundle
from fhir_ns.progress import NO_PROGRESS, Progress
from fhir_ns.ruleset import RuleSet
from fhir_ns.terminology import Terminology
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.fastcheck import proves_clean
from fhir_ns.validate.input_profile import InputProfile
from fhir_ns.validate.invariants import check_invariants, is_plain
from fhir_ns.validate.issues import LAYERS, Issue, Layer, join, resource_name
from fhir_ns.validate.other_version import other_version_words
from fhir_ns.validate.output_profile import check_output
from fhir_ns.validate.spec import FhirVersion, Spec, load_spec
from fhir_ns.validate.spool import Located, Place, Sink, Spool
from fhir_ns.validate.streamed import StreamedBundle
from fhir_ns.validate.structure import check_bundle_shell, check_resource
from fhir_ns.validate.syntax import canonical, check_resource_types, parse_json

__all__ = ["FileReport", "Located", "Validation", "Validator"]

_ENTRY = re.compile(r"^entry\[(\d+)\]")
_READ_BYTES = 1 << 20
# A Bundle file larger than this is read one entry at a time (streamed.py), in memory that does not grow with it;
# a smaller one whole (JSON that is not JSON then reported without what comes before it)
STREAM_ABOVE = 8 * 1024**2
# The input profile's collector keeps the records it files in memory up to this much, then on disk
SPILL = SpillLimit(megabytes=64)


@dataclass(slots=True)
class FileReport:
    name: str
    index: int  # in the spool
    spool: Sink  # the Spool, or in a worker process a record of what is added to it
    unreadable: bool = False  # an I/O problem, not a validation finding
    resources: int = 0

    @property
    def issues(self) -> list[Located]:
        """Every issue of the file, in the order found."""
        assert isinstance(self.spool, Spool)  # (read back in the process that holds the Spool)
        return list(self.spool.issues(self.index))


@dataclass(slots=True)
class Validation:
    files: list[FileReport]
    seconds: dict[Layer, float]
    resources: int
    spool: Spool

    @property
    def unreadable(self) -> bool:
        return any(f.unreadable for f in self.files)

    @property
    def errors(self) -> int:
        return sum(c["fatal"] + c["error"] for c in map(self.spool.severity_counts, range(len(self.files))))


class _Timed:
    """Adds the time spent in a `with` block to a layer's seconds (a class: a context manager made of a generator
    costs a microsecond more, and validate times several blocks per resource)."""

    __slots__ = ("layer", "seconds", "start")

    def __init__(self, seconds: dict[Layer, float], layer: Layer) -> None:
        self.seconds = seconds
        self.layer = layer
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self.seconds[self.layer] += time.perf_counter() - self.start


@dataclass(slots=True)
class _Document:
    report: FileReport
    label: str  # "" for a whole file, "line 4" for an NDJSON line
    value: dict[str, Any]
    base: str  # Bundle, Observation ...
    text: bytes  # its JSON text
    proven: bool  # layers 1-3 proven to find nothing in it, so its text is as orjson writes it


class Validator:
    """The six layers for one FHIR version, with the terminology and rule sets of this installation."""

    def __init__(self, version: FhirVersion, terminology: Terminology, rulesets: dict[str, RuleSet]) -> None:
        self.spec: Spec = load_spec(version)
        self.terminology = terminology
        self.rulesets = rulesets
        self.seconds: dict[Layer, float] = dict.fromkeys(LAYERS, 0.0)
        # prove what can be proven clean cheaply, and decide invariants by the shapes of objects seen before (tests
        # turn it off to compare)
        self.fast = True
        self.stream_above = STREAM_ABOVE  # bytes (tests stream every Bundle to compare)

    def _timed(self, layer: Layer) -> _Timed:
        return _Timed(self.seconds, layer)

    def validate(self, paths: list[str], progress: Progress = NO_PROGRESS, jobs: int = 1) -> Validation:
        """Validate files, directories (recursively), NDJSON and '-' (stdin), one document (an NDJSON line)
        at a time; what is found goes to a Spool, read back by the caller. `progress` is told the bytes read.
        `jobs` > 1: in that many worker processes (parallel.py), not when reading standard input."""
        if jobs > 1 and "-" not in paths:
            from fhir_ns.validate.parallel import validate_parallel

            return validate_parallel(self, paths, jobs, progress)
        spool = Spool()
        profile = InputProfile(self.terminology, SPILL)
        reports: list[FileReport] = []
        told = progress.reading if progress.enabled else None
        for name in expand_paths(paths):
            report = FileReport(name, spool.new_report(), spool)
            reports.append(report)
            self.read_file(name, report, profile, told)
        return self.finish(profile, spool, reports)

    def finish(self, profile: InputProfile, spool: Spool, reports: list[FileReport]) -> Validation:
        """Once every file is read: the input profile's problems with the whole, and the result."""
        self._input_profile(profile, spool, reports)
        return Validation(reports, dict(self.seconds), sum(r.resources for r in reports), spool)

    def read_file(
        self, name: str, report: FileReport, profile: InputProfile, progress: Callable[[int], None] | None = None
    ) -> None:
        """One file through the layers (its entries into `profile`), what is found to `report`."""
        if self._streams(name):
            self._streamed(name, report, profile, progress)
            return
        for label, data in self._documents(name, report, progress):
            self._document(report, label, data, profile)

    def read_piece(
        self, name: str, start: int, end: int, first: int, report: FileReport, profile: InputProfile
    ) -> None:
        """The lines of an NDJSON file that start in the byte range [start, end), as reading the whole file
        reads them; `first`: the number of the piece's first line in the file (`line_breaks` before it, + 1)."""
        try:
            with open(name, "rb") as fh:
                fh.seek(start)
                data = fh.read(end - start)
        except OSError as exc:
            report.unreadable = True
            message = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            self._place(report, "", None, "", [Issue("fatal", "exception", message, "syntax")], 0)
            return
        for number, line in enumerate(_lines(io.BytesIO(data)), start=first):
            if line.strip():
                self._document(report, f"line {number}", line, profile)

    # -- reading and layer 1 -------------------------------------------------------------------------
    def _streams(self, name: str) -> bool:
        """Whether a file is a Bundle to read one entry at a time: larger than `stream_above`, starting as one."""
        if name == "-" or name.endswith(NDJSON_SUFFIXES):
            return False
        try:
            if os.path.getsize(name) <= self.stream_above:
                return False
            with _open(name) as fh:
                return starts_as_bundle(fh.read(4096))
        except (OSError, EOFError):
            return False  # reading it says what is wrong

    def _streamed(
        self, name: str, report: FileReport, profile: InputProfile, progress: Callable[[int], None] | None
    ) -> None:
        try:
            with _open(name) as fh:
                StreamedBundle(self, report, profile).read(fh, name, progress)
        except (OSError, EOFError) as exc:
            report.unreadable = True
            message = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            self._place(report, "", None, "", [Issue("fatal", "exception", message, "syntax")], 0)

    def _documents(
        self, name: str, report: FileReport, progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """(label, JSON text) of each document of a file: the file itself, or each line of NDJSON."""
        try:
            if name == "-":
                yield from self._split(sys.stdin.buffer.read(), name)
            elif name.endswith(NDJSON_SUFFIXES) and progress is not None and not name.endswith(".gz"):
                with _open(name) as fh:
                    yield from _numbered(counted(_lines(fh), progress))
            elif name.endswith(NDJSON_SUFFIXES):
                with _open(name) as fh:
                    yield from _numbered(_lines(fh))
                if progress is not None:
                    progress(os.path.getsize(name))
            else:
                with _open(name) as fh:
                    data = fh.read()
                yield from self._split(data, name)
                if progress is not None:
                    progress(os.path.getsize(name))
        except (OSError, EOFError) as exc:
            report.unreadable = True
            message = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            self._place(report, "", None, "", [Issue("fatal", "exception", message, "syntax")], 0)

    def _split(self, data: bytes, name: str) -> Iterator[tuple[str, bytes]]:
        with self._timed("syntax"):
            stripped = data.strip()
            ndjson = name.endswith(NDJSON_SUFFIXES)
            if not ndjson and stripped.startswith(b"{") and b"\n{" in stripped:
                try:
                    orjson.loads(data)
                except orjson.JSONDecodeError:
                    ndjson = True  # one JSON object per line, whatever the file is called
        if not ndjson:
            yield "", data
            return
        yield from _numbered(_lines(io.BytesIO(data)))

    def _document(self, report: FileReport, label: str, data: bytes, profile: InputProfile) -> None:
        """One document through every layer; its entries into the input profile."""
        with self._timed("syntax"):
            value = self._proven(data) if self.fast else None
            proven = value is not None
            if not proven:
                parsed = parse_json(data)
                value = parsed.value
                base = value.get("resourceType") if isinstance(value, dict) else None
                base = base if isinstance(base, str) else "Resource"
                issues = list(parsed.issues)
                if value is not None:
                    issues += check_resource_types(value, self.spec.is_resource_type)
                self._place(report, label, value, base, issues, 0)
                if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
                    return
        assert isinstance(value, dict)
        doc = _Document(report, label, value, value["resourceType"], data, proven)
        report.resources += _count(value)
        self._per_document(doc)
        with self._timed("input-profile"):
            for entry in self._entries(doc):
                self._entry(doc, entry, profile)

    def _proven(self, data: bytes) -> dict[str, Any] | None:
        """The resource, when layers 1-3 provably find nothing in this JSON text; None says nothing.

        Layer 1 is proven by the text being exactly what orjson writes for what it reads (so no key twice,
        no byte order mark, no odd encoding), with no integer longer than layer 1 allows, of a known type;
        the strict schema of fastcheck.py refuses nulls, empty arrays and deep nesting besides proving
        layers 2 and 3. Not a Bundle, which goes through the layers (their Bundle-wide checks read it whole).
        """
        value = canonical(data)
        if value is None or not self.proven_resource(value, data):
            return None
        return value

    def proven_resource(self, value: dict[str, Any], text: bytes) -> bool:
        """Whether layers 1-3 provably find nothing in a resource whose JSON text (`text`) is `canonical`."""
        rtype = value.get("resourceType")
        if type(rtype) is not str or rtype == "Bundle" or not self.spec.is_resource_type(rtype):
            return False
        return proves_clean(text, rtype, self.spec.version)

    # -- layers 2, 3, 4, 6 ----------------------------------------------------------------------------
    def _per_document(self, doc: _Document) -> None:
        """Layers 2, 3, 4 and 6 (2 and 3 already proven to find nothing in a `proven` document)."""
        value = doc.value
        issues: list[Issue] = []
        if doc.proven:
            with self._timed("invariant"):
                issues += check_invariants(value, self.spec, plain=is_plain(doc.text), remembered=self.fast)
            with self._timed("output-profile"):
                issues += check_output(value, self.rulesets)
            self._place(doc.report, doc.label, value, doc.base, issues, 1)
            return
        with self._timed("structure"):
            if value["resourceType"] == "Bundle":
                issues += check_bundle_shell(value, self.spec.version)
                for index, entry in enumerate(value.get("entry") or []):
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                        prefix = f"entry[{index}].resource"
                        issues += [i.under(prefix) for i in check_resource(resource, self.spec.version)]
            else:
                issues += check_resource(value, self.spec.version)
        with self._timed("binding"):
            nodes = walk(value, self.spec)
            issues += check_bindings(nodes, self.spec)
        with self._timed("structure"):
            issues += self._other_version(value, issues)
        with self._timed("invariant"):
            issues += check_invariants(value, self.spec, remembered=self.fast)
        with self._timed("output-profile"):
            issues += check_output(value, self.rulesets)
        self._place(doc.report, doc.label, value, doc.base, issues, 1)

    def _other_version(self, value: dict[str, Any], issues: list[Issue]) -> list[Issue]:
        """For each resource refused by layers 2-3 but sound in the other FHIR version, an error saying so."""
        if value["resourceType"] == "Bundle":
            entries = value.get("entry") or []
            resources = [
                (f"entry[{i}].resource", e.get("resource")) for i, e in enumerate(entries) if isinstance(e, dict)
            ]
        else:
            resources = [("", value)]
        return [found for prefix, resource in resources if (found := self.other_version(resource, prefix, issues))]

    def other_version(self, resource: Any, prefix: str, issues: list[Issue]) -> Issue | None:
        """For a resource (at `prefix`) refused by layers 2-3 (`issues`) but sound in the other FHIR version, an
        issue saying so."""
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return None
        if not any(i.is_error and i.layer in ("structure", "binding") and _within(i.path, prefix) for i in issues):
            return None
        words = other_version_words(resource, self.spec.version)
        return None if words is None else Issue("warning", "not-supported", words, "structure", prefix)

    # -- layer 5 --------------------------------------------------------------------------------------
    def _entries(self, doc: _Document) -> list[Entry]:
        if doc.label and doc.value["resourceType"] != "Bundle":
            return [Entry(doc.value, Location(doc.report.name, line=int(doc.label.split()[1])))]
        return list(document_entries(doc.report.name, doc.value, []))

    def _entry(self, doc: _Document, entry: Entry, profile: InputProfile) -> None:
        """One entry into the input profile; where it was read noted for the problems found at the end."""
        loc = entry.location
        text = doc.text if doc.proven and entry.resource is doc.value else None
        issues = [self._issue(problem) for problem in profile.add(entry, text)]
        label = f"line {loc.line}" if loc.line is not None else ""
        path = f"entry[{loc.entry}].resource" if loc.entry is not None else ""
        group = _group(label, doc.value, doc.base, path)
        doc.report.spool.place(loc.file, loc.entry, loc.line, Place(doc.report.index, doc.base, group))
        self._place(doc.report, label, doc.value, doc.base, issues, 3)

    def _input_profile(self, profile: InputProfile, spool: Spool, reports: list[FileReport]) -> None:
        """The classifier's problems with the entries, once all are read, placed where each entry was read."""
        start = time.perf_counter()
        by_name = {r.name: r for r in reports}
        for problem in profile.finish():
            loc = problem.location
            place = spool.find(loc.file, loc.entry, loc.line)
            if place is not None:
                issue = self._issue(problem)
                spool.add(place.report, 2, Located(issue, place.group, issue.expression(place.base)))
                continue
            nested, outer = "", loc.file
            if " entry[" in loc.file:  # an entry of a Bundle inside a Bundle entry
                outer, _, rest = loc.file.partition(" entry[")
                nested = f"entry[{rest.rstrip(']')}].resource"
            report = by_name.get(outer)
            if report is not None:
                label = f"line {loc.line}" if loc.line is not None else ""
                self._place(report, label, None, "Bundle", [self._issue(problem, nested)], 2)
        self.seconds["input-profile"] += time.perf_counter() - start

    @staticmethod
    def _issue(problem: Problem, nested: str = "") -> Issue:
        loc = problem.location
        prefix = join(nested, f"entry[{loc.entry}].resource") if loc.entry is not None else nested
        return Issue(
            problem.severity, problem.code, problem.message, "input-profile", join(prefix, problem.element or "")
        )

    # -- placing ----------------------------------------------------------------------------------------
    def _place(self, report: FileReport, label: str, doc: Any, base: str, issues: list[Issue], phase: int) -> None:
        for issue in issues:
            group = _group(label, doc, base, issue.path)
            expression = issue.expression(base) if doc is not None else issue.path
            report.spool.add(report.index, phase, Located(issue, group, expression))


def _within(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or under it ('' holds everything)."""
    return not prefix or path == prefix or path.startswith(prefix + ".")


def _group(label: str, doc: Any, base: str, path: str) -> str:
    """Which entry an issue belongs to, said the way a person finds it: `entry[3] Observation/o1`."""
    if not isinstance(doc, dict):
        return label
    match = _ENTRY.match(path) if base == "Bundle" else None
    if match:
        index = int(match.group(1))
        entries = doc.get("entry")
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        return " ".join(x for x in (label, f"entry[{index}]", resource_name(resource)) if x)
    return " ".join(x for x in (label, resource_name(doc)) if x)


def _count(doc: dict[str, Any]) -> int:
    if doc.get("resourceType") == "Bundle" and isinstance(doc.get("entry"), list):
        return 1 + sum(1 for e in doc["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict))
    return 1


def _open(name: str) -> BinaryIO:
    if name.endswith(".gz"):
        return gzip.open(name, "rb")  # type: ignore[return-value]
    return open(name, "rb")  # noqa: SIM115 (the caller closes it)


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    """The lines of a stream as `bytes.splitlines` cuts them (at \\n, \\r\\n or \\r), read a piece at a time."""
    rest = b""
    while chunk := fh.read(_READ_BYTES):
        pieces = (rest + chunk).splitlines(keepends=True)
        rest = pieces.pop()  # perhaps not complete yet, or a \\r whose \\n is in the next piece
        for piece in pieces:
            yield piece[:-2] if piece.endswith(b"\r\n") else piece[:-1]
    if rest:
        yield rest.rstrip(b"\r\n") if rest.endswith((b"\n", b"\r")) else rest


def line_breaks(data: bytes) -> int:
    """How many line ends `_lines` finds in `data` (\\n, \\r\\n or \\r): the lines of a piece of a file that ends
    with one, so the first line of the next piece is numbered one more than all the pieces' before it."""
    ends = data.count(b"\n")
    if b"\r" in data:  # (rare: counting \r\n is slow)
        ends += data.count(b"\r") - data.count(b"\r\n")
    return ends


def _numbered(lines: Iterator[bytes]) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield f"line {number}", line
