"""The project's own code systems (ns-classification, ns-finding), read from mappings/codesystems/."""

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
    system_id: str  # ns-classification | ns-finding
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
    """Every ns-classification and ns-finding code with its display, default severity and v3 category."""
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
        raise ConfigError(f"code {code!r} is in neither ns-classification nor ns-finding") from exc


@dataclass(frozen=True, slots=True)
class Activity:
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class CarePlanTemplate:
    id: str
    title: str
    intent: str
    activities: tuple[Activity, ...]


@cache
def careplan_templates() -> dict[str, CarePlanTemplate]:
    """The care plan proposals of mappings/careplans.yaml, by id."""
    from fhir_ns.terminology import load_yaml

    data = load_yaml(builtin_mappings_dir() / "careplans.yaml") or {}
    out = {}
    for template_id, spec in (data.get("templates") or {}).items():
        out[template_id] = CarePlanTemplate(
            template_id,
            spec["title"],
            spec.get("intent", "proposal"),
            tuple(Activity(a["text"], a["source"]) for a in spec.get("activities", [])),
        )
    return out
