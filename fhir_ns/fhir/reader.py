"""Read FHIR JSON: Bundles (any type), single resources and NDJSON, from files, directories or stdin.

Plain JSON (orjson), no models: the reader yields resource dicts and reports what it cannot read as
Problems, then carries on with the next entry, line or file.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from fhir_ns.fhir.problems import Location, Problem

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
MAX_FILE_BYTES = 2 * 1024**3  # a single JSON document larger than this is refused, not loaded


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource read from the input, with where it came from and its Bundle fullUrl, if any."""

    resource: dict[str, Any]
    location: Location
    full_url: str | None = None


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


def read_entries(inputs: Iterable[str], problems: list[Problem]) -> Iterator[Entry]:
    """Every resource in the inputs; unreadable parts become Problems and are skipped."""
    for name in expand_paths(inputs):
        try:
            if name == "-":
                yield from _read_stream("<stdin>", sys.stdin.buffer, problems)
            else:
                with _open(Path(name)) as fh:
                    yield from _read_stream(name, fh, problems, ndjson=name.endswith(NDJSON_SUFFIXES))
        except OSError as exc:
            problems.append(Problem("error", "exception", f"cannot read: {exc.strerror or exc}", Location(name)))


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _read_stream(name: str, fh: BinaryIO, problems: list[Problem], ndjson: bool | None = None) -> Iterator[Entry]:
    if ndjson:
        yield from _read_ndjson(name, fh, problems)
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
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # A file of one JSON object per line is NDJSON whatever its name.
        if ndjson is None and data.lstrip().startswith(b"{") and b"\n{" in data.strip():
            yield from _ndjson_lines(name, data.splitlines(), problems)
            return
        problems.append(Problem("error", "structure", _json_error(exc), Location(name)))
        return
    yield from _document_entries(name, doc, problems)


def _read_ndjson(name: str, fh: BinaryIO, problems: list[Problem]) -> Iterator[Entry]:
    yield from _ndjson_lines(name, fh, problems)


def _ndjson_lines(name: str, lines: Iterable[bytes], problems: list[Problem]) -> Iterator[Entry]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        location = Location(name, line=number)
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(Problem("error", "structure", _json_error(exc), location))
            continue
        if _is_resource(resource, location, problems):
            if resource["resourceType"] == "Bundle":
                yield from _bundle_entries(name, resource, problems)
            else:
                yield Entry(resource, location)


def _document_entries(name: str, doc: Any, problems: list[Problem]) -> Iterator[Entry]:
    location = Location(name)
    if not _is_resource(doc, location, problems):
        return
    if doc["resourceType"] == "Bundle":
        yield from _bundle_entries(name, doc, problems)
    else:
        yield Entry(doc, location)


def _bundle_entries(name: str, bundle: dict[str, Any], problems: list[Problem]) -> Iterator[Entry]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        problems.append(Problem("error", "structure", "Bundle.entry is not a list", Location(name), "entry"))
        return
    for index, entry in enumerate(entries):
        location = Location(name, entry=index)
        if not isinstance(entry, dict):
            problems.append(Problem("error", "structure", "entry is not an object", location))
            continue
        resource = entry.get("resource")
        if resource is None:
            method = (entry.get("request") or {}).get("method")
            if method not in ("DELETE", "GET", "HEAD"):
                problems.append(Problem("warning", "required", "entry has no resource", location))
            continue
        if not _is_resource(resource, location, problems):
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if resource["resourceType"] == "Bundle":
            yield from _bundle_entries(f"{name} entry[{index}]", resource, problems)
        else:
            yield Entry(resource, location, full_url)


def _is_resource(value: Any, location: Location, problems: list[Problem]) -> bool:
    if not isinstance(value, dict):
        problems.append(
            Problem("error", "structure", f"expected a JSON object, found {type(value).__name__}", location)
        )
        return False
    rtype = value.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        problems.append(Problem("error", "structure", "no resourceType", location, "resourceType"))
        return False
    return True


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
