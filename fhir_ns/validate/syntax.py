"""Layer 1: the bytes and the JSON. Empty files, encodings, malformed JSON (line and column), JSON that
naive parsers choke on (deep nesting, huge numbers, NaN, duplicate keys, byte order marks), and
resources without a known `resourceType`.

orjson (what the classifier reads with) finds malformed JSON with its line and column; a second parse
with the standard library's hooks finds what orjson silently accepts: duplicate keys (the last one wins)
and integers too large to hold exactly. Nothing here recurses over the document, so no input can raise
RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_ns.fhir.reader import MAX_FILE_BYTES
from fhir_ns.validate.issues import Issue, join

MAX_DEPTH = 100  # JSON nesting; real FHIR resources stay far below it (the HL7 examples: under 20)
MAX_EXACT_DIGITS = 18  # an integer literal longer than this does not survive as a 64-bit number
UTF8_BOM = b"\xef\xbb\xbf"
# Digits as zeros: a run of more of them than layer 1 lets through in an integer, or in a string, is found with a
# plain substring search
_ZEROED = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * (MAX_EXACT_DIGITS + 1)
OTHER_BOMS = {b"\xff\xfe": "UTF-16 (little-endian)", b"\xfe\xff": "UTF-16 (big-endian)"}


def _error(message: str, path: str = "", code: str = "structure") -> Issue:
    return Issue("error", code, message, "syntax", path)


@dataclass(slots=True)
class Parsed:
    """A parsed JSON text and the syntax issues found in it; `value` is None when it cannot be read at all."""

    value: Any = None
    issues: list[Issue] = field(default_factory=list)


def parse_json(data: bytes, depth: int = 1) -> Parsed:
    """Parse one JSON text (a file, or an NDJSON line) strictly; `depth`: the nesting level of its value in
    the document (3 for an entry of a Bundle read one entry at a time)."""
    out = Parsed()
    if len(data) > MAX_FILE_BYTES:
        out.issues.append(_error("too large for a single JSON document; use NDJSON", code="too-costly"))
        return out
    if not data.strip():
        out.issues.append(_error("empty file"))
        return out
    for bom, encoding in OTHER_BOMS.items():
        if data.startswith(bom) and not data.startswith(UTF8_BOM):
            out.issues.append(_error(f"not UTF-8: the file is {encoding}; FHIR JSON is UTF-8"))
            return out
    if data.startswith(UTF8_BOM):
        out.issues.append(_error("starts with a UTF-8 byte order mark, which JSON senders must not add; remove it"))
        data = data[len(UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        hint = " (a NUL byte: UTF-16?)" if data[exc.start : exc.start + 1] == b"\x00" else ""
        out.issues.append(_error(f"not UTF-8 at line {line} column {column}: byte 0x{data[exc.start]:02x}{hint}"))
        return out
    if "\x00" in text:
        out.issues.append(_error("contains NUL characters: the file looks like UTF-16, not UTF-8"))
        return out
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        out.issues.append(_error(_malformed(exc, text)))
        return out
    big: list[str] = []
    duplicates: dict[int, list[str]] = {}
    try:
        value = json.loads(text, object_pairs_hook=_pairs(duplicates), parse_int=_integer(big))
    except RecursionError:
        out.issues.append(_error(f"nesting deeper than {MAX_DEPTH} levels; refused"))
        return out
    except ValueError as exc:  # orjson accepted it, so this is a limit of the standard library
        out.issues.append(_error(f"cannot be read: {exc}"))
        return out
    if _scan(value, duplicates, out.issues, depth):
        out.value = value
    return out


def scan(value: Any, depth: int = 1) -> Parsed:
    """`parse_json` of a value already read from JSON text as orjson writes it with no integer too long (so with
    no key twice): nulls, empty arrays, nesting too deep."""
    out = Parsed()
    if _scan(value, {}, out.issues, depth):
        out.value = value
    return out


def canonical(data: bytes) -> dict[str, Any] | None:
    """The JSON object in `data` when `data` is exactly what orjson writes for it (so no key twice, no byte order
    mark, no odd encoding) with no integer longer than layer 1 lets through; None otherwise."""
    if _LONG_DIGITS in data.translate(_ZEROED):
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    try:
        written = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return None
    return value if written == data else None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def _malformed(exc: orjson.JSONDecodeError, text: str) -> str:
    at = text[exc.pos : exc.pos + 9]
    if at.startswith(("NaN", "Infinity", "-Infinity")):
        return f"malformed JSON at line {exc.lineno} column {exc.colno}: NaN and Infinity are not JSON numbers"
    if "depth" in exc.msg or "recursion" in exc.msg:
        return f"malformed JSON at line {exc.lineno} column {exc.colno}: nesting too deep ({exc.msg})"
    return f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"


class _BigInteger(float):
    """An integer literal with too many digits, kept as the float orjson would have made of it."""

    literal: str


def _integer(big: list[str]) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal.lstrip("-")) > MAX_EXACT_DIGITS:
            number = _BigInteger(float(literal))
            number.literal = literal
            return number
        return int(literal)

    return parse


def _pairs(duplicates: dict[int, list[str]]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            duplicates[id(obj)] = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
        return obj

    return build


def _scan(value: Any, duplicates: dict[int, list[str]], issues: list[Issue], depth: int = 1) -> bool:
    """One iterative pass: depth, nulls, empty arrays, duplicate keys, huge integers.
    False when the document is too deep to hand to the other layers."""
    stack: list[tuple[Any, str, int, bool]] = [(value, "", depth, False)]
    while stack:
        node, path, depth, null_ok = stack.pop()
        if depth > MAX_DEPTH:
            issues.append(_error(f"nesting deeper than {MAX_DEPTH} levels; refused", path, "too-costly"))
            return False
        if isinstance(node, dict):
            for key in duplicates.get(id(node), ()):
                issues.append(_error(f"duplicate key {key!r}: JSON readers keep only one of them", join(path, key)))
            for key, child in node.items():
                if isinstance(child, _BigInteger):
                    node[key] = _exact(child, join(path, key), issues)
                # ["a", null] lines an array of primitives up with its `_name` extensions, and back
                paired = (f"_{key}" in node) or (key.startswith("_") and key[1:] in node)
                stack.append((child, join(path, key), depth + 1, paired))
        elif isinstance(node, list):
            if not node:
                issues.append(_error("empty array: leave the element out instead", path))
            for index, child in enumerate(node):
                if isinstance(child, _BigInteger):
                    node[index] = _exact(child, f"{path}[{index}]", issues)
                stack.append((child, f"{path}[{index}]", depth + 1, null_ok))
        elif node is None and not (null_ok and path.endswith("]")):
            issues.append(_error("null is not allowed in FHIR JSON", path))
    return True


def _exact(number: _BigInteger, path: str, issues: list[Issue]) -> float:
    issues.append(_error(f"number {number.literal} has too many digits to be read exactly", path, "value"))
    return float(number)


def check_resource_types(doc: Any, known: Callable[[str], bool], path: str = "") -> list[Issue]:
    """The document and every resource in it (Bundle entries, contained) is an object with a known resourceType."""
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(doc, path)]
    while stack:
        res, where = stack.pop()
        if not isinstance(res, dict):
            issues.append(_error(f"expected a resource (a JSON object), found {_json_type(res)}", where))
            continue
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            issues.append(_error("no resourceType", join(where, "resourceType"), "required"))
            continue
        if not known(rtype):
            issues.append(_error(f"unknown resourceType {rtype!r}", join(where, "resourceType"), "code-invalid"))
            continue
        for index, contained in enumerate(res.get("contained") or [] if isinstance(res.get("contained"), list) else []):
            stack.append((contained, join(where, f"contained[{index}]")))
        entries = res.get("entry") if rtype == "Bundle" else None
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and "resource" in entry:
                stack.append((entry["resource"], join(where, f"entry[{index}].resource")))
    return issues


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
