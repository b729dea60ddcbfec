"""Run the layers over files: each document through layers 1-4 and 6, all entries together through 5.

Every layer runs on every document even when an earlier one found errors; only a document that
cannot be parsed (or is too deep to walk safely) stops after layer 1.
"""

from __future__ import annotations

import gzip
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_ns.fhir.problems import Location
from fhir_ns.fhir.reader import NDJSON_SUFFIXES, Entry, document_entries, expand_paths
from fhir_ns.ruleset import RuleSet
from fhir_ns.terminology import Terminology
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.input_profile import check_input
from fhir_ns.validate.invariants import check_invariants
from fhir_ns.validate.issues import LAYERS, Issue, Layer, join
from fhir_ns.validate.other_version import other_version_words
from fhir_ns.validate.output_profile import check_output
from fhir_ns.validate.spec import FhirVersion, Spec, load_spec
from fhir_ns.validate.structure import check_bundle_shell, check_resource
from fhir_ns.validate.syntax import check_resource_types, parse_json

_ENTRY = re.compile(r"^entry\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Located:
    """An issue placed in its file: the entry (or NDJSON line) it belongs to, and its full expression."""

    issue: Issue
    group: str  # "Bundle", "entry[3] Observation/o1", "line 4 Observation/o1", "" for the file itself
    expression: str  # Bundle.entry[3].resource.status ("" when the file could not be read)


@dataclass(slots=True)
class FileReport:
    name: str
    issues: list[Located] = field(default_factory=list)
    unreadable: bool = False  # an I/O problem, not a validation finding
    resources: int = 0


@dataclass(slots=True)
class Validation:
    files: list[FileReport]
    seconds: dict[Layer, float]
    resources: int

    @property
    def unreadable(self) -> bool:
        return any(f.unreadable for f in self.files)


@dataclass(slots=True)
class _Document:
    report: FileReport
    label: str  # "" for a whole file, "line 4" for an NDJSON line
    value: dict[str, Any]
    base: str  # Bundle, Observation ...


class Validator:
    """The six layers for one FHIR version, with the terminology and rule sets of this installation."""

    def __init__(self, version: FhirVersion, terminology: Terminology, rulesets: dict[str, RuleSet]) -> None:
        self.spec: Spec = load_spec(version)
        self.terminology = terminology
        self.rulesets = rulesets
        self.seconds: dict[Layer, float] = dict.fromkeys(LAYERS, 0.0)

    @contextmanager
    def _timed(self, layer: Layer) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[layer] += time.perf_counter() - start

    def validate(self, paths: list[str]) -> Validation:
        """Validate files, directories (recursively), NDJSON and '-' (stdin)."""
        reports: list[FileReport] = []
        documents: list[_Document] = []
        for name in expand_paths(paths):
            report = FileReport(name)
            reports.append(report)
            data = self._read(name, report)
            if data is not None:
                documents.extend(self._syntax(name, data, report))
        entries: list[tuple[_Document, Entry]] = []
        for doc in documents:
            self._per_document(doc)
            for entry in self._entries(doc):
                entries.append((doc, entry))
        self._input_profile(entries, {d.report.name: d.report for d in documents})
        return Validation(reports, dict(self.seconds), sum(r.resources for r in reports))

    # -- reading and layer 1 -------------------------------------------------------------------------
    def _read(self, name: str, report: FileReport) -> bytes | None:
        try:
            if name == "-":
                return sys.stdin.buffer.read()
            path = Path(name)
            if name.endswith(".gz"):
                with gzip.open(path, "rb") as fh:
                    return fh.read()
            return path.read_bytes()
        except (OSError, EOFError) as exc:
            report.unreadable = True
            message = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            report.issues.append(Located(Issue("fatal", "exception", message, "syntax"), "", ""))
            return None

    def _syntax(self, name: str, data: bytes, report: FileReport) -> list[_Document]:
        with self._timed("syntax"):
            stripped = data.strip()
            ndjson = name.endswith(NDJSON_SUFFIXES)
            if not ndjson and stripped.startswith(b"{") and b"\n{" in stripped:
                try:
                    orjson.loads(data)
                except orjson.JSONDecodeError:
                    ndjson = True  # one JSON object per line, whatever the file is called
            if not ndjson:
                return self._document(report, "", data)
            documents = []
            for number, line in enumerate(data.splitlines(), start=1):
                if line.strip():
                    documents.extend(self._document(report, f"line {number}", line))
            return documents

    def _document(self, report: FileReport, label: str, data: bytes) -> list[_Document]:
        parsed = parse_json(data)
        value = parsed.value
        base = value.get("resourceType") if isinstance(value, dict) else None
        base = base if isinstance(base, str) else "Resource"
        issues = list(parsed.issues)
        if value is not None:
            issues += check_resource_types(value, self.spec.is_resource_type)
        self._place(report, label, value, base, issues)
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            return []
        report.resources += _count(value)
        return [_Document(report, label, value, base)]

    # -- layers 2, 3, 4, 6 ----------------------------------------------------------------------------
    def _per_document(self, doc: _Document) -> None:
        value = doc.value
        issues: list[Issue] = []
        with self._timed("structure"):
            if value["resourceType"] == "Bundle":
                issues += check_bundle_shell(value, self.spec.version)
                for index, entry in enumerate(value.get("entry") or []):
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                        prefix = f"entry[{index}].resource"
                        issues += [_under(i, prefix) for i in check_resource(resource, self.spec.version)]
            else:
                issues += check_resource(value, self.spec.version)
        with self._timed("binding"):
            nodes = walk(value, self.spec)
            issues += check_bindings(nodes, self.spec)
        with self._timed("structure"):
            issues += self._other_version(value, issues)
        with self._timed("invariant"):
            issues += check_invariants(nodes, self.spec)
        with self._timed("output-profile"):
            issues += check_output(value, self.rulesets)
        self._place(doc.report, doc.label, value, doc.base, issues)

    def _other_version(self, value: dict[str, Any], issues: list[Issue]) -> list[Issue]:
        """For each resource refused by layers 2-3 but sound in the other FHIR version, an error saying so."""
        if value["resourceType"] == "Bundle":
            entries = value.get("entry") or []
            resources = [
                (f"entry[{i}].resource", e.get("resource")) for i, e in enumerate(entries) if isinstance(e, dict)
            ]
        else:
            resources = [("", value)]
        out = []
        for prefix, resource in resources:
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                continue
            if not any(i.is_error and i.layer in ("structure", "binding") and _within(i.path, prefix) for i in issues):
                continue
            words = other_version_words(resource, self.spec.version)
            if words is not None:
                out.append(Issue("warning", "not-supported", words, "structure", prefix))
        return out

    # -- layer 5 --------------------------------------------------------------------------------------
    def _entries(self, doc: _Document) -> list[Entry]:
        if doc.label and doc.value["resourceType"] != "Bundle":
            return [Entry(doc.value, Location(doc.report.name, line=int(doc.label.split()[1])))]
        return list(document_entries(doc.report.name, doc.value, []))

    def _input_profile(self, entries: list[tuple[_Document, Entry]], reports: dict[str, FileReport]) -> None:
        with self._timed("input-profile"):
            problems = check_input((e for _, e in entries), self.terminology)
        by_location = {(e.location.file, e.location.entry, e.location.line): d for d, e in entries}
        for problem in problems:
            loc = problem.location
            doc = by_location.get((loc.file, loc.entry, loc.line))
            nested, outer = "", loc.file
            if doc is None and " entry[" in loc.file:  # an entry of a Bundle inside a Bundle entry
                outer, _, rest = loc.file.partition(" entry[")
                nested = f"entry[{rest.rstrip(']')}].resource"
            report = doc.report if doc else reports.get(outer)
            if report is None:
                continue
            prefix = join(nested, f"entry[{loc.entry}].resource") if loc.entry is not None else nested
            issue = Issue(
                problem.severity, problem.code, problem.message, "input-profile", join(prefix, problem.element or "")
            )
            label = f"line {loc.line}" if loc.line is not None else ""
            value = doc.value if doc else None
            base = doc.base if doc else "Bundle"
            self._place(report, label, value, base, [issue])

    # -- placing ----------------------------------------------------------------------------------------
    def _place(self, report: FileReport, label: str, doc: Any, base: str, issues: list[Issue]) -> None:
        for issue in issues:
            group = _group(label, doc, base, issue.path)
            expression = issue.expression(base) if doc is not None else issue.path
            report.issues.append(Located(issue, group, expression))


def _within(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or under it ('' holds everything)."""
    return not prefix or path == prefix or path.startswith(prefix + ".")


def _under(issue: Issue, prefix: str) -> Issue:
    return Issue(issue.severity, issue.code, issue.message, issue.layer, join(prefix, issue.path))


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
        return " ".join(x for x in (label, f"entry[{index}]", _name(resource)) if x)
    return " ".join(x for x in (label, _name(doc)) if x)


def _name(resource: Any) -> str:
    if not isinstance(resource, dict):
        return ""
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rtype, str):
        return ""
    return f"{rtype}/{rid}" if isinstance(rid, str) else rtype


def _count(doc: dict[str, Any]) -> int:
    if doc.get("resourceType") == "Bundle" and isinstance(doc.get("entry"), list):
        return 1 + sum(1 for e in doc["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict))
    return 1
