"""Validation results as text (grouped by file and entry) or as FHIR OperationOutcomes (one per file),
written piece by piece from the spool, so that no output needs the issues in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson

from fhir_ns.fhir.problems import Severity
from fhir_ns.validate.runner import FileReport, Validation
from fhir_ns.validate.spool import Spool

_HOLE = "\x00"  # where the streamed part goes in a JSON skeleton (orjson writes it as \u0000)
_INDENT = orjson.OPT_INDENT_2


def strict(validation: Validation) -> Validation:
    """--strict: every warning becomes an error."""
    validation.spool.strict = True
    return validation


def text(validation: Validation, verbose: bool = False) -> Iterator[str]:
    """One block per file, one sub-block per entry, one line per issue: severity, location, message."""
    spool = validation.spool
    for report in validation.files:
        counts = spool.severity_counts(report.index)
        hidden = counts["information"] and not verbose
        yield f"{report.name}: {_counts(report, counts)}" + (" (hidden; -v shows them)" if hidden else "") + "\n"
        group = None
        least: Severity = "information" if verbose else "warning"
        for x in spool.issues(report.index, grouped=True, least=least):
            if x.group != group:
                group = x.group
                if group:
                    yield f"  {group}\n"
            where = f"{x.expression}  " if x.expression else ""
            yield f"    {x.issue.severity:<11} {where}[{x.issue.layer}] {x.issue.message}\n"
    yield (
        f"fhir-ns validate: {len(validation.files)} file(s), {validation.resources} resource(s), "
        f"{validation.errors} error(s)\n"
    )


def _counts(report: FileReport, by: dict[Severity, int]) -> str:
    if report.unreadable:
        return "cannot be read"
    parts = [f"{n} {s}{'s' if n != 1 and s != 'information' else ''}" for s, n in by.items() if n]
    return ", ".join(parts) or "valid"


def outcome_issues(report: FileReport) -> Iterator[dict[str, Any]]:
    """The issues of one file's OperationOutcome (an `information` issue when there are none)."""
    found = False
    assert isinstance(report.spool, Spool)  # (read back in the process that holds the Spool)
    for x in report.spool.issues(report.index):
        found = True
        issue: dict[str, Any] = {
            "severity": x.issue.severity,
            "code": x.issue.code,
            "details": {"text": f"fhir-ns validate, layer {x.issue.layer}"},
            "diagnostics": f"{report.name}{' ' + x.group if x.group else ''}: {x.issue.message}",
        }
        if x.expression:
            issue["expression"] = [x.expression]
        yield issue
    if not found:
        yield {"severity": "information", "code": "informational", "diagnostics": f"{report.name}: no problems found"}


def bundle(validation: Validation) -> Iterator[bytes]:
    """A collection Bundle of one OperationOutcome per file (fullUrl names the file), as indented JSON,
    written one issue at a time."""
    head, tail = _skeleton({"resourceType": "Bundle", "type": "collection", "entry": [_HOLE]}, 0)
    yield head
    for number, report in enumerate(validation.files):
        url = (
            Path(report.name).resolve().as_uri() if report.name != "-" else f"urn:uuid:{uuid5(NAMESPACE_URL, 'stdin')}"
        )
        entry = {"fullUrl": url, "resource": {"resourceType": "OperationOutcome", "issue": [_HOLE]}}
        entry_head, entry_tail = _skeleton(entry, 4)
        yield (b",\n" if number else b"") + entry_head
        for index, issue in enumerate(outcome_issues(report)):
            yield (b",\n" if index else b"") + _indented(orjson.dumps(issue, option=_INDENT), 10)
        yield entry_tail
    yield tail


def _skeleton(value: dict[str, Any], indent: int) -> tuple[bytes, bytes]:
    """The indented JSON of `value` before and after its one hole (the hole's own line left out)."""
    text = _indented(orjson.dumps(value, option=_INDENT), indent)
    before, _, after = text.partition(b'"\\u0000"')
    return before[: before.rfind(b"\n") + 1], after


def _indented(text: bytes, indent: int) -> bytes:
    """Every line of `text` moved `indent` spaces to the right."""
    margin = b" " * indent
    return margin + text.replace(b"\n", b"\n" + margin) if indent else text
