"""The FHIR definitions of one version, as vendored data: required bindings, invariants, model packages.

`mappings/fhir/<VERSION>/valuesets.yaml` and `invariants.yaml` are generated from the HL7 packages by
`tools/vendor_fhir_spec.py`; this module only loads and indexes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from fhirpathpy.models import models

from fhir_ns.errors import ConfigError
from fhir_ns.terminology import builtin_mappings_dir, load_yaml

FhirVersion = Literal["R4", "R4B", "R5"]
VERSIONS: tuple[FhirVersion, ...] = ("R4", "R4B", "R5")
# fhir.resources has no R4 package; R4 data is read with the R4B models (NOTES.md: R4 JSON of the
# resources fhir-ns uses validates there). fhirpathpy has r4 and r5 models; R4B uses r4.
MODEL_PACKAGE = {"R4": "fhir.resources.R4B", "R4B": "fhir.resources.R4B", "R5": "fhir.resources"}
FHIRPATH_MODEL = {"R4": "r4", "R4B": "r4", "R5": "r5"}


@dataclass(frozen=True, slots=True)
class Binding:
    element: str  # Observation.status, Timing.repeat.periodUnit
    value_set: str  # canonical|version
    kind: str  # code | Coding | CodeableConcept
    codes: dict[str, frozenset[str]]  # system -> codes
    all_codes: frozenset[str]

    @property
    def name(self) -> str:
        return self.value_set.split("|")[0].rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    context: str  # Element, Reference, DomainResource, Observation, Observation.referenceRange
    severity: str
    human: str
    expression: str
    best_practice: bool = False


@dataclass(slots=True)
class Spec:
    """Everything version-specific the layers need."""

    version: FhirVersion
    source: str
    bindings: dict[str, Binding]
    invariants: list[Invariant]
    path_types: dict[str, str] = field(default_factory=dict)  # Observation.subject -> Reference
    defined_elsewhere: dict[str, str] = field(default_factory=dict)  # Bundle.entry.link -> Bundle.link
    parents: dict[str, str] = field(default_factory=dict)  # Age -> Quantity, Observation -> DomainResource

    @property
    def fhirpath_model(self) -> dict[str, Any]:
        return models[FHIRPATH_MODEL[self.version]]  # type: ignore[no-any-return]

    def lineage(self, type_name: str) -> list[str]:
        """`Age` -> [Age, Quantity, Element]: the type and the types it specialises."""
        out = [type_name]
        while out[-1] in self.parents and len(out) < 10:
            out.append(self.parents[out[-1]])
        return out

    def is_resource_type(self, name: str) -> bool:
        return "Resource" in self.lineage(name)[1:] or name in ("Resource", "DomainResource")


@cache
def load_spec(version: FhirVersion) -> Spec:
    """The vendored definitions of `version` (R4, R4B or R5)."""
    if version not in VERSIONS:
        raise ConfigError(f"unknown FHIR version {version!r}; known: {', '.join(VERSIONS)}")
    base = builtin_mappings_dir() / "fhir" / version
    valuesets = load_yaml(base / "valuesets.yaml") or {}
    invariants = load_yaml(base / "invariants.yaml") or {}
    bindings = {}
    for element, spec in (valuesets.get("bindings") or {}).items():
        codes = {system: frozenset(str(c) for c in values) for system, values in spec["codes"].items()}
        bindings[element] = Binding(element, spec["valueSet"], spec["type"], codes, frozenset().union(*codes.values()))
    rules = [
        Invariant(
            i["key"], i["context"], i["severity"], i["human"], i["expression"], bool(i.get("bestPractice", False))
        )
        for i in invariants.get("invariants") or []
    ]
    model = models[FHIRPATH_MODEL[version]]
    return Spec(
        version=version,
        source=str((valuesets.get("source") or {}).get("package", "")),
        bindings=bindings,
        invariants=rules,
        path_types=dict(model["path2Type"]),
        defined_elsewhere=dict(model["pathsDefinedElsewhere"]),
        parents=dict(model["type2Parent"]),
    )
