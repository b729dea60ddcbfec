"""What a validation layer reports: severity, issue type, message, and where in the resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fhir_ns.fhir.problems import Severity

Layer = Literal["syntax", "structure", "binding", "invariant", "input-profile", "output-profile"]
LAYERS: tuple[Layer, ...] = ("syntax", "structure", "binding", "invariant", "input-profile", "output-profile")


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding of one layer. `path` is FHIRPath-like and relative to the resource checked ('' = itself)."""

    severity: Severity
    code: str  # OperationOutcome issue type: structure, value, code-invalid, invariant, required, ...
    message: str
    layer: Layer
    path: str = ""

    def expression(self, base: str) -> str:
        """The location under `base` (`Bundle.entry[3].resource`, `Observation`): base.path."""
        return f"{base}.{self.path}" if self.path else base

    @property
    def is_error(self) -> bool:
        return self.severity in ("error", "fatal")

    def under(self, prefix: str) -> Issue:
        """The issue of something checked on its own, placed under where it is (`entry[3].resource`)."""
        return Issue(self.severity, self.code, self.message, self.layer, join(prefix, self.path))


def resource_name(resource: Any) -> str:
    """How issues name the resource they are about: `Observation/o1`, `Bundle` ("" for what is no resource)."""
    if not isinstance(resource, dict):
        return ""
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rtype, str):
        return ""
    return f"{rtype}/{rid}" if isinstance(rid, str) else rtype


def join(parent: str, child: str) -> str:
    """`dosage[0]` + `timing` -> `dosage[0].timing`; either may be empty."""
    if not parent:
        return child
    if not child:
        return parent
    return f"{parent}.{child}"
