"""The project's own code systems (ns-classification, ns-finding, ns-measure), read from mappings/codesystems/."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from fhir_ns.errors import ConfigError
from fhir_ns.terminology import builtin_mappings_dir

DEFAULT_CANONICAL_BASE = "https://fhir-ns.example.org/fhir"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    system_id: str  # ns-classification | ns-finding | ns-measure
    code: str
    display: str
    definition: str
    severity: str
    category: str


@cache
def code_systems() -> dict[str, dict[str, Any]]:
    """The CodeSystem resources as shipped, by id."""
    out = {}
    for path in sorted((builtin_mappings_dir() / "codesystems").glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        out[resource["id"]] = resource
    return out


@cache
def catalogue() -> dict[str, CodeInfo]:
    """Every code of the project's CodeSystems with its display (and, for categories and findings, default severity
    and v3 category)."""
    out: dict[str, CodeInfo] = {}
    for system_id, resource in code_systems().items():
        for concept in resource.get("concept", []):
            props = {p["code"]: p.get("valueCode") for p in concept.get("property", [])}
            out[concept["code"]] = CodeInfo(
                system_id,
                concept["code"],
                concept["display"],
                concept.get("definition", ""),
                props.get("severity") or "moderate",
                props.get("category") or "OBSA",
            )
    return out


def info(code: str) -> CodeInfo:
    try:
        return catalogue()[code]
    except KeyError as exc:
        raise ConfigError(
            f"code {code!r} is in none of the project's CodeSystems (ns-classification, ns-finding, ns-measure)"
        ) from exc


@dataclass(frozen=True, slots=True)
class RecordMatch:
    """What on the record makes an activity current or done (careplans.yaml `in_progress_when` / `completed_when`)."""

    drug_classes: tuple[str, ...] = ()
    drugs: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    genetic_result: bool = False
    since_trigger: bool = False  # only what is recorded on or after the plan's trigger date counts

    def __bool__(self) -> bool:
        return bool(self.drug_classes or self.drugs or self.conditions or self.genetic_result)


@dataclass(frozen=True, slots=True)
class Activity:
    text: str
    source: str
    involves: tuple[str, ...] = ()  # what a contraindication can rule out (immunosuppression ...)
    in_progress_when: RecordMatch = RecordMatch()
    completed_when: RecordMatch = RecordMatch()


@dataclass(frozen=True, slots=True)
class CarePlanTemplate:
    id: str
    title: str
    intent: str
    activities: tuple[Activity, ...]


@dataclass(frozen=True, slots=True)
class Contraindication:
    """A classification or finding code that rules out the activities involving any of `rules_out`."""

    code: str
    rules_out: tuple[str, ...]
    because: str


@dataclass(frozen=True, slots=True)
class CarePlanCatalogue:
    templates: dict[str, CarePlanTemplate]
    contraindications: tuple[Contraindication, ...]
    supersession: dict[str, tuple[str, ...]]  # trigger category -> the later categories that supersede it


_MATCH_KEYS = {"drug_classes", "drugs", "conditions", "genetic_result", "since_trigger"}


def _match(spec: dict[str, Any] | None, where: str) -> RecordMatch:
    if not spec:
        return RecordMatch()
    unknown = set(spec) - _MATCH_KEYS
    if unknown:
        raise ConfigError(f"careplans.yaml {where}: unknown key(s) {', '.join(sorted(unknown))}")
    return RecordMatch(
        tuple(spec.get("drug_classes", ())),
        tuple(spec.get("drugs", ())),
        tuple(spec.get("conditions", ())),
        bool(spec.get("genetic_result", False)),
        bool(spec.get("since_trigger", False)),
    )


@cache
def careplans() -> CarePlanCatalogue:
    """The care plan proposals of mappings/careplans.yaml: templates, contraindications, supersession."""
    from fhir_ns.terminology import load_yaml

    data = load_yaml(builtin_mappings_dir() / "careplans.yaml") or {}
    templates = {}
    for template_id, spec in (data.get("templates") or {}).items():
        activities = []
        for i, a in enumerate(spec.get("activities", [])):
            where = f"{template_id} activity {i + 1}"
            activities.append(
                Activity(
                    a["text"],
                    a["source"],
                    tuple(a.get("involves", ())),
                    _match(a.get("in_progress_when"), where),
                    _match(a.get("completed_when"), where),
                )
            )
        templates[template_id] = CarePlanTemplate(
            template_id, spec["title"], spec.get("intent", "proposal"), tuple(activities)
        )
    contraindications = tuple(
        Contraindication(info(code).code, tuple(spec["rules_out"]), spec["because"])
        for code, spec in (data.get("contraindications") or {}).items()
    )
    supersession = {
        info(code).code: tuple(info(c).code for c in later) for code, later in (data.get("supersession") or {}).items()
    }
    return CarePlanCatalogue(templates, contraindications, supersession)
