"""Problems found in the input: what, where, how bad. Rendered as text or as an OperationOutcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a resource came from: a file, and an entry index (Bundle) or a line number (NDJSON)."""

    file: str
    entry: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file} line {self.line}"
        if self.entry is not None:
            return f"{self.file} entry[{self.entry}]"
        return self.file

    @property
    def is_option(self) -> bool:
        """A problem of the evaluation located at a command-line option (`--as-of 2030-01-01`), not in a file."""
        return self.file.startswith("--")

    def expression(self, element: str | None = None) -> str:
        """A FHIRPath-like location: `Bundle.entry[3].resource.effectiveDateTime`."""
        base = f"Bundle.entry[{self.entry}].resource" if self.entry is not None else "Resource"
        return f"{base}.{element}" if element else base


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input. `error` refuses the resource and its patient; `warning` does not."""

    severity: Severity
    code: str  # OperationOutcome issue-type code: invalid, structure, value, code-invalid, duplicate...
    message: str
    location: Location
    element: str | None = None
    resource: str | None = None  # "Observation/123"
    patient: str | None = None  # the patient key, when the problem can be attributed
    # A record that could not be read at all (no or an unknown resourceType, not an object, malformed
    # JSON): its data is lost, so the patients it may belong to cannot be judged complete. `names` is the
    # patient reference it still names, if any ("Patient/123").
    lost: bool = False
    names: str | None = None

    def __str__(self) -> str:
        what = f" {self.resource}" if self.resource else ""
        at = f" ({self.element})" if self.element else ""
        return f"{self.severity}: {self.location}{what}{at}: {self.message}"


def operation_outcome(problems: list[Problem]) -> dict[str, Any]:
    """An R4 OperationOutcome listing the problems (an `information` issue when there are none)."""
    issues: list[dict[str, Any]] = []
    for p in problems:
        issue: dict[str, Any] = {"severity": p.severity, "code": p.code, "diagnostics": str(p)}
        if not p.location.is_option:  # an option is no place in a resource
            issue["expression"] = [p.location.expression(p.element)]
        issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "no problems found"})
    return {"resourceType": "OperationOutcome", "issue": issues}
