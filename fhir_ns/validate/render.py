"""Validation results as text (grouped by file and entry) or as FHIR OperationOutcomes (one per file)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from fhir_ns.validate.runner import FileReport, Located, Validation

ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


def strict(validation: Validation) -> Validation:
    """--strict: every warning becomes an error."""
    for report in validation.files:
        report.issues = [
            replace(x, issue=replace(x.issue, severity="error")) if x.issue.severity == "warning" else x
            for x in report.issues
        ]
    return validation


def text(validation: Validation, verbose: bool = False) -> str:
    """One block per file, one sub-block per entry, one line per issue: severity, location, message."""
    lines: list[str] = []
    for report in validation.files:
        shown = [x for x in report.issues if verbose or x.issue.severity != "information"]
        hidden = len(report.issues) - len(shown)
        counts = _counts(report)
        lines.append(
            f"{report.name}: {counts}"
            + (" (hidden; -v shows them)" if hidden and len(shown) < len(report.issues) else "")
        )
        groups: dict[str, list[Located]] = {}
        for located in shown:
            groups.setdefault(located.group, []).append(located)
        for group in sorted(groups, key=_group_order):
            if group:
                lines.append(f"  {group}")
            for x in sorted(groups[group], key=lambda x: ORDER[x.issue.severity]):
                where = f"{x.expression}  " if x.expression else ""
                lines.append(f"    {x.issue.severity:<11} {where}[{x.issue.layer}] {x.issue.message}")
    errors = sum(1 for r in validation.files for x in r.issues if x.issue.is_error)
    lines.append(
        f"fhir-ns validate: {len(validation.files)} file(s), {validation.resources} resource(s), {errors} error(s)"
    )
    return "\n".join(lines) + "\n"


def _counts(report: FileReport) -> str:
    by = {s: sum(1 for x in report.issues if x.issue.severity == s) for s in ORDER}
    if report.unreadable:
        return "cannot be read"
    parts = [f"{n} {s}{'s' if n != 1 and s != 'information' else ''}" for s, n in by.items() if n]
    return ", ".join(parts) or "valid"


def _group_order(group: str) -> tuple[int, int, str]:
    """The file itself and the Bundle first, then entries (or NDJSON lines) in their order."""
    digits = "".join(c if c.isdigit() else " " for c in group).split()
    return (1 if digits else 0, int(digits[0]) if digits else 0, group)


def outcome(report: FileReport) -> dict[str, Any]:
    """A FHIR OperationOutcome of one file's issues (an `information` issue when there are none)."""
    issues: list[dict[str, Any]] = []
    for x in report.issues:
        issue: dict[str, Any] = {
            "severity": x.issue.severity,
            "code": x.issue.code,
            "details": {"text": f"fhir-ns validate, layer {x.issue.layer}"},
            "diagnostics": f"{report.name}{' ' + x.group if x.group else ''}: {x.issue.message}",
        }
        if x.expression:
            issue["expression"] = [x.expression]
        issues.append(issue)
    if not issues:
        issues.append(
            {"severity": "information", "code": "informational", "diagnostics": f"{report.name}: no problems found"}
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def bundle(validation: Validation) -> dict[str, Any]:
    """A collection Bundle of one OperationOutcome per file; fullUrl names the file."""
    entries = []
    for report in validation.files:
        url = (
            Path(report.name).resolve().as_uri() if report.name != "-" else f"urn:uuid:{uuid5(NAMESPACE_URL, 'stdin')}"
        )
        entries.append({"fullUrl": url, "resource": outcome(report)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
