"""The entry gate of `convert`: layers 2 and 3 on each entry before the classifier reads it.

An entry with a structure or binding error is refused, and with it its patient (the problems are
handed to the FactCollector with the entry, so they follow the entry's patient like its own).
Only what the classifier uses is checked: the resource types it reads, and of Observations and
Conditions only those whose code the mappings know (the others are ignored by the classifier, so a
flaw in them cannot mislead it). fhir.resources validation is the expensive part
(bench/validate_cost.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_ns.fhir.extract import READ_TYPES
from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.terminology import Terminology
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.spec import FhirVersion, load_spec
from fhir_ns.validate.structure import check_resource


class EntryGate:
    """Structure and required bindings of one entry, as Problems located like the classifier's."""

    def __init__(
        self, version: FhirVersion = "R4", types: frozenset[str] = READ_TYPES, terminology: Terminology | None = None
    ) -> None:
        self.spec = load_spec(version)
        self.types = types
        self.known: dict[str, set[tuple[str, str]]] = {}
        if terminology is not None:  # without it, every resource of the types is checked
            self.known = {
                "Observation": set(terminology.observation_codes),
                "Condition": set(terminology.condition_codes),
            }

    def check(self, entry: Entry) -> list[Problem]:
        resource = _as_dict(entry)
        rtype = resource.get("resourceType") if resource is not None else None
        if resource is None or rtype not in self.types:
            return []
        if rtype in self.known and not _has_known_code(resource, self.known[rtype]):
            return []
        issues = check_resource(resource, self.spec.version)
        issues += check_bindings(walk(resource, self.spec), self.spec)
        rid = resource.get("id")
        source = f"{rtype}/{rid}" if isinstance(rid, str) else None
        return [
            Problem(
                i.severity,
                i.code,
                f"{i.message} (FHIR {i.layer}; entry not used)",
                entry.location,
                i.path or None,
                source,
            )
            for i in issues
        ]


def _has_known_code(resource: dict[str, Any], known: set[tuple[str, str]]) -> bool:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return True  # malformed: let layers 2-3 say what is wrong
    return any(isinstance(c, dict) and (c.get("system"), c.get("code")) in known for c in codings)


def _as_dict(entry: Entry) -> dict[str, Any] | None:
    """The entry as plain JSON: the dict itself, or the JSON text of a typed entry read again."""
    if isinstance(entry.resource, dict):
        return entry.resource
    raw = getattr(entry, "raw", None)
    value = orjson.loads(raw) if raw else None
    return value if isinstance(value, dict) else None
