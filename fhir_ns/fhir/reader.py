"""Read FHIR JSON: Bundles (any type), single resources and NDJSON, from files, directories or stdin.

No models: the reader yields each resource as a plain dict (orjson), or, read `typed`, as the Struct
of the elements fhir-ns uses (`shapes`, msgspec, every other element skipped while decoding) with its
JSON text. What cannot be decoded typed (another resource type, malformed JSON) is read again as a
dict, so every problem is reported as the dict reader reports it: unreadable parts become Problems,
and reading carries on with the next entry, line or file.
"""

from __future__ import annotations

import difflib
import gzip
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import orjson

from fhir_ns.fhir import shapes
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.terminology import builtin_mappings_dir, load_yaml

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
MAX_FILE_BYTES = 2 * 1024**3  # a single JSON document larger than this is refused, not loaded
UNIT_BYTES = 16 * 1024**2  # NDJSON files are read in pieces of about this size when split for --jobs
TYPED_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)

# (resource, its JSON text or None, file name, Bundle entry index, NDJSON line, Bundle fullUrl)
Item = tuple[Any, bytes | None, str, int | None, int | None, str | None]


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource read from the input, with where it came from and its Bundle fullUrl, if any.

    `resource` is a dict, or a `shapes` Struct when read typed; `raw` is then its JSON text.
    """

    resource: Any  # a dict, or a `shapes` Struct when read typed
    location: Location
    full_url: str | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of the input read as one: a whole file ('-' is stdin), or the lines of an NDJSON file
    that start in the byte range [start, end)."""

    name: str
    start: int = 0
    end: int | None = None

    def size(self) -> int:
        """The bytes of the unit on disk (0 for standard input)."""
        if self.end is not None:
            return self.end - self.start
        return 0 if self.name == "-" else (_size(self.name) or 0)

    def lines(self) -> int:
        """How many lines a piece of a file holds (the next piece's first line is one more)."""
        if self.end is None:
            return 0
        with open(self.name, "rb") as fh:
            fh.seek(self.start)
            return fh.read(self.end - self.start).count(b"\n")


class _BundleEntry(msgspec.Struct, gc=False):
    fullUrl: Any = None  # noqa: N815 (FHIR element names)
    resource: msgspec.Raw = msgspec.Raw()
    request: Any = None


class _Bundle(msgspec.Struct, tag_field="resourceType", tag="Bundle", gc=False):
    entry: list[_BundleEntry | shapes.NotObject] | shapes.NotArray = None


_document = msgspec.json.Decoder(shapes.Shaped | _Bundle).decode  # type: ignore[arg-type]


def expand_paths(inputs: Iterable[str]) -> list[str]:
    """Files named, and the JSON/NDJSON files under directories named, in a stable order. '-' is stdin."""
    out: list[str] = []
    for name in inputs:
        path = Path(name)
        if name == "-":
            out.append(name)
        elif path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.name.endswith(JSON_SUFFIXES + NDJSON_SUFFIXES)
            )
        else:
            out.append(name)
    return out


def input_of(inputs: Iterable[str]) -> dict[str, str]:
    """Each file read (as problems and records name it) -> the INPUT argument that named it (a file, a
    directory, '-')."""
    out: dict[str, str] = {}
    for name in inputs:
        for path in expand_paths([name]):
            out.setdefault("<stdin>" if path == "-" else path, name)
    return out


def read_entries(inputs: Iterable[str], problems: list[Problem], typed: bool = False) -> Iterator[Entry]:
    """Every resource in the inputs; unreadable parts become Problems and are skipped."""
    return read_units(whole_files(inputs), problems, typed)


def read_units(units: Iterable[Unit], problems: list[Problem], typed: bool = False) -> Iterator[Entry]:
    """Every resource in the units, as Entries."""
    for resource, raw, name, entry, line, full_url in scan(units, problems, typed):
        yield Entry(resource, Location(name, entry, line), full_url, raw)


def whole_files(inputs: Iterable[str]) -> list[Unit]:
    """Each input file as one unit."""
    return [Unit(name) for name in expand_paths(inputs)]


def split_units(inputs: Iterable[str], unit_bytes: int | None = None) -> list[Unit]:
    """The input as units of about `unit_bytes` (UNIT_BYTES): uncompressed NDJSON files cut between lines,
    others whole."""
    unit_bytes = unit_bytes or UNIT_BYTES
    out: list[Unit] = []
    for name in expand_paths(inputs):
        size = _size(name)
        if not name.endswith((".ndjson", ".jsonl")) or size is None or size <= unit_bytes:
            out.append(Unit(name))
            continue
        with open(name, "rb") as fh:
            start = 0
            while start < size:
                fh.seek(min(start + unit_bytes, size))
                fh.readline()  # to the start of the next line
                end = min(fh.tell(), size)
                out.append(Unit(name, start, end))
                start = end
    return out


def _size(name: str) -> int | None:
    try:
        return os.stat(name).st_size
    except OSError:
        return None


def scan(
    units: Iterable[Unit],
    problems: list[Problem],
    typed: bool = False,
    lines: dict[Unit, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Item]:
    """Every resource in the units, as Items; unreadable parts become Problems and are skipped. `lines`
    is told how many lines each piece of an NDJSON file holds (`Unit.lines`, counted as read); `progress`
    the bytes read as reading goes (an uncompressed NDJSON file every few thousand lines, any other file
    or piece of a file when done)."""
    for unit in units:
        name = unit.name
        try:
            if name == "-":
                yield from _read_stream("<stdin>", sys.stdin.buffer, problems, typed)
            elif unit.end is not None:
                with open(name, "rb") as fh:
                    fh.seek(unit.start)
                    piece = _lines_until(fh, unit.end - unit.start, unit, lines)
                    yield from _ndjson_lines(name, counted(piece, progress) if progress else piece, problems, typed)
            else:
                ndjson = name.endswith(NDJSON_SUFFIXES)
                by_line = progress is not None and ndjson and not name.endswith(".gz")
                with _open(Path(name)) as fh:
                    if by_line:
                        yield from _ndjson_lines(name, counted(fh, progress), problems, typed)
                    else:
                        yield from _read_stream(name, fh, problems, typed, ndjson=ndjson)
                if progress is not None and not by_line:
                    progress(_size(name) or 0)
        except OSError as exc:
            problems.append(Problem("error", "exception", f"cannot read: {exc.strerror or exc}", Location(name)))


def counted(lines: Iterable[bytes], progress: Callable[[int], None] | None) -> Iterator[bytes]:
    """The lines, telling `progress` how many bytes went by every 4096 lines."""
    assert progress is not None
    done = 0
    for number, line in enumerate(lines):
        done += len(line)
        if not number & 4095:
            progress(done)
            done = 0
        yield line
    progress(done)


def _lines_until(fh: BinaryIO, size: int, unit: Unit, lines: dict[Unit, int] | None) -> Iterator[bytes]:
    read = count = 0
    last = b"\n"
    for line in fh:
        if read >= size:
            break
        read += len(line)
        count += 1
        last = line
        yield line
    if lines is not None:
        lines[unit] = count - (not last.endswith(b"\n"))  # as Unit.lines counts them


def document_entries(name: str, doc: Any, problems: list[Problem]) -> Iterator[Entry]:
    """The resources of one parsed JSON document, as the classifier reads them (Bundles unpacked)."""
    for resource, _, source, entry, line, full_url in _document_entries(name, doc, problems):
        yield Entry(resource, Location(source, entry, line), full_url)


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _read_stream(
    name: str, fh: BinaryIO, problems: list[Problem], typed: bool, ndjson: bool | None = None
) -> Iterator[Item]:
    if ndjson:
        yield from _ndjson_lines(name, fh, problems, typed)
        return
    data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        problems.append(
            Problem("error", "too-costly", "file too large for a single JSON document; use NDJSON", Location(name))
        )
        return
    if not data.strip():
        problems.append(Problem("error", "structure", "empty file", Location(name)))
        return
    if typed:
        try:
            doc = _document(data)
        except TYPED_ERRORS:
            pass  # read it again as dicts, to report it as the dict reader does
        else:
            if isinstance(doc, _Bundle):
                yield from _typed_bundle_entries(name, doc, problems)
            else:
                yield doc, data.strip(), name, None, None, None
            return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # A file of one JSON object per line is NDJSON whatever its name.
        if ndjson is None and data.lstrip().startswith(b"{") and b"\n{" in data.strip():
            yield from _ndjson_lines(name, data.splitlines(), problems, typed)
            return
        problems.append(Problem("error", "structure", _json_error(exc), Location(name)))
        return
    yield from _document_entries(name, doc, problems)


def _ndjson_lines(name: str, lines: Iterable[bytes], problems: list[Problem], typed: bool) -> Iterator[Item]:
    decode = shapes.decode
    for number, line in enumerate(lines, start=1):
        if line.isspace() or not line:
            continue
        if typed:
            try:
                yield decode(line), line.rstrip(b"\r\n"), name, None, number, None
                continue
            except TYPED_ERRORS:
                pass  # another resource type, or not JSON: the dict reader says which
        location = Location(name, line=number)
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(Problem("error", "structure", _json_error(exc), location, lost=True))
            continue
        if _is_resource(resource, location, problems):
            if resource["resourceType"] == "Bundle":
                yield from _bundle_entries(name, resource, problems)
            else:
                yield resource, None, name, None, number, None


def _document_entries(name: str, doc: Any, problems: list[Problem]) -> Iterator[Item]:
    if not _is_resource(doc, Location(name), problems):
        return
    if doc["resourceType"] == "Bundle":
        yield from _bundle_entries(name, doc, problems)
    else:
        yield doc, None, name, None, None, None


def _bundle_entries(name: str, bundle: dict[str, Any], problems: list[Problem]) -> Iterator[Item]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        problems.append(Problem("error", "structure", "Bundle.entry is not a list", Location(name), "entry"))
        return
    for index, entry in enumerate(entries):
        yield from _entry_items(name, index, entry, problems)


def entry_resources(name: str, index: int, entry: Any, problems: list[Problem]) -> Iterator[Entry]:
    """The resources of one entry of a Bundle (`entry[index]` of file `name`, read on its own), as
    `document_entries` gives those of the whole Bundle."""
    for resource, _, source, at, line, full_url in _entry_items(name, index, entry, problems):
        yield Entry(resource, Location(source, at, line), full_url)


def _entry_items(name: str, index: int, entry: Any, problems: list[Problem]) -> Iterator[Item]:
    if not isinstance(entry, dict):
        problems.append(Problem("error", "structure", "entry is not an object", Location(name, entry=index), lost=True))
        return
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    yield from _bundle_entry(name, index, entry.get("resource"), entry.get("request"), full_url, problems)


def _typed_bundle_entries(name: str, bundle: _Bundle, problems: list[Problem]) -> Iterator[Item]:
    entries = bundle.entry or []
    if not isinstance(entries, list):
        problems.append(Problem("error", "structure", "Bundle.entry is not a list", Location(name), "entry"))
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, _BundleEntry):
            problems.append(
                Problem("error", "structure", "entry is not an object", Location(name, entry=index), lost=True)
            )
            continue
        full_url = entry.fullUrl if isinstance(entry.fullUrl, str) else None
        raw = bytes(entry.resource)
        try:
            resource = shapes.decode(raw)
        except TYPED_ERRORS:  # absent, null, another type: read as a dict
            plain = orjson.loads(raw) if raw else None
            yield from _bundle_entry(name, index, plain, entry.request, full_url, problems)
            continue
        yield resource, raw, name, index, None, full_url


def _bundle_entry(
    name: str, index: int, resource: Any, request: Any, full_url: str | None, problems: list[Problem]
) -> Iterator[Item]:
    location = Location(name, entry=index)
    if resource is None:
        method = (request if isinstance(request, dict) else {}).get("method")
        if method not in ("DELETE", "GET", "HEAD"):
            problems.append(Problem("warning", "required", "entry has no resource", location))
        return
    if not _is_resource(resource, location, problems):
        return
    if resource["resourceType"] == "Bundle":
        yield from _bundle_entries(f"{name} entry[{index}]", resource, problems)
    else:
        yield resource, None, name, index, None, full_url


def _is_resource(value: Any, location: Location, problems: list[Problem]) -> bool:
    """Is `value` a resource of a FHIR resource type? If not, the record is lost: say so, naming the
    patient it still names, if any."""
    if not isinstance(value, dict):
        problems.append(
            Problem("error", "structure", f"expected a JSON object, found {type(value).__name__}", location, lost=True)
        )
        return False
    rtype = value.get("resourceType")
    if isinstance(rtype, str) and rtype in resource_types():
        return True
    if rtype is None:
        why = "no resourceType"
    elif not isinstance(rtype, str):
        why = f"resourceType is not a string: {orjson.dumps(rtype).decode()[:40]}"
    else:
        near = difflib.get_close_matches(rtype, resource_types(), n=1, cutoff=0.8)
        near = near or [t for t in resource_types() if t.lower() == rtype.lower()]
        why = f"resourceType {rtype!r} is not a FHIR resource type" + (f" (did you mean {near[0]}?)" if near else "")
    problems.append(
        Problem(
            "error",
            "structure",
            f"{why}; the record cannot be read",
            location,
            "resourceType",
            _written_id(value, rtype),
            lost=True,
            names=_named_patient(value, rtype),
        )
    )
    return False


def _written_id(value: dict[str, Any], rtype: Any) -> str | None:
    rid = value.get("id")
    return f"{rtype if isinstance(rtype, str) else '?'}/{rid}" if isinstance(rid, str) else None


def _named_patient(value: dict[str, Any], rtype: Any) -> str | None:
    """The patient an unreadable record still names: its subject or patient reference, or its own id when
    its resourceType is recognisably Patient ("patient", "Patinet")."""
    for key in ("subject", "patient"):
        ref = value.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"]:
            return str(ref["reference"])
    patient_like = isinstance(rtype, str) and (
        rtype.lower() == "patient" or bool(difflib.get_close_matches(rtype, ["Patient"], n=1, cutoff=0.8))
    )
    return f"Patient/{value['id']}" if patient_like and isinstance(value.get("id"), str) else None


@cache
def resource_types() -> frozenset[str]:
    """The FHIR resource types of every version fhir-ns reads (R4, R4B, R5), vendored from the HL7 packages."""
    names: set[str] = set()
    for version in ("R4", "R4B", "R5"):
        data = load_yaml(builtin_mappings_dir() / "fhir" / version / "resource-types.yaml") or {}
        names.update(data.get("resource_types", []))
    return frozenset(names)


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
