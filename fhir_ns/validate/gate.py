"""The entry gate of `convert`: layers 2 and 3 on each entry before the classifier reads it.

An entry with a structure or binding error is refused, and with it its patient (the problems are
handed to the FactCollector with the entry, so they follow the entry's patient like its own).
Only what the classifier uses is checked: the resource types it reads, and of Observations,
Conditions and Procedures only those whose code the mappings know (the others are ignored by the classifier, so a
flaw in them cannot mislead it). fhir.resources validation is the expensive part (bench/validate_cost.py),
so each entry is first put to a cheap proof that the layers would find nothing in it (fastcheck.py, some
10 us against some 250); only an entry it cannot prove clean goes through the layers, which report it.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import orjson

from fhir_ns.fhir.extract import READ_TYPES
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.fhir.shapes import CodeableConcept, Coding, Resource
from fhir_ns.terminology import Terminology
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.fastcheck import proves_clean
from fhir_ns.validate.other_version import other_version_words
from fhir_ns.validate.spec import FhirVersion, load_spec
from fhir_ns.validate.structure import check_resource


class EntryGate:
    """Structure and required bindings of one entry, as Problems located like the classifier's."""

    def __init__(
        self, version: FhirVersion = "R4", types: frozenset[str] = READ_TYPES, terminology: Terminology | None = None
    ) -> None:
        self.spec = load_spec(version)
        self.types = types
        self.known: dict[str, Container[tuple[str, str]]] = {}
        if terminology is not None:  # without it, every resource of the types is checked
            self.known = {
                "Observation": set(terminology.observation_codes),
                "Condition": _ConditionCodes(terminology),
                "Procedure": set(terminology.procedure_codes),
                "AllergyIntolerance": _DrugCodes(terminology),
            }

    def check(self, entry: Entry) -> list[Problem]:
        """Problems of one entry as read: a dict, or a `shapes` Struct with its JSON text."""
        resource = entry.resource
        if not isinstance(resource, dict):
            return self.check_raw(entry.raw or b"", resource.resource_type, entry.location, resource)
        if not self._checks(resource):
            return []
        raw = _as_json(resource)
        if raw is not None and proves_clean(raw, resource["resourceType"], self.spec.version):
            return []
        return self._layers(resource, entry.location)

    def check_raw(self, raw: bytes, rtype: str, location: Location, shaped: Resource | None = None) -> list[Problem]:
        """Problems of one entry given as its JSON text, `rtype` its resourceType: what `check` finds in it.

        `shaped`, the entry's `shapes` Struct if the caller has decoded it, lets an Observation or Condition
        whose code the mappings do not know be passed over without looking at the text. No text, no problems,
        as for a typed entry without its text.
        """
        if rtype not in self.types or not raw:
            return []
        if shaped is not None and rtype in self.known and not _has_known_shaped_code(shaped, self.known[rtype]):
            return []
        if proves_clean(raw, rtype, self.spec.version):
            return []
        resource = orjson.loads(raw)
        if not isinstance(resource, dict) or not self._checks(resource):
            return []
        return self._layers(resource, location)

    def _checks(self, resource: dict[str, Any]) -> bool:
        """Of a type the gate checks and, for a resource with a code, of a code the mappings know."""
        rtype = resource.get("resourceType")
        return rtype in self.types and (
            rtype not in self.known or _has_known_code(resource.get("code"), self.known[rtype])
        )

    def _layers(self, resource: dict[str, Any], location: Location) -> list[Problem]:
        issues = check_resource(resource, self.spec.version)
        issues += check_bindings(walk(resource, self.spec), self.spec)
        rid = resource.get("id")
        source = f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else None
        problems = [
            Problem(
                i.severity,
                i.code,
                f"{i.message} (FHIR {i.layer}; entry not used)",
                location,
                i.path or None,
                source,
            )
            for i in issues
        ]
        hint = other_version_words(resource, self.spec.version) if any(i.is_error for i in issues) else None
        if hint is not None:
            problems.append(Problem("warning", "not-supported", hint, location, None, source))
        return problems


class _ConditionCodes:
    """The condition codes the mappings know: exact codes and the codes under an ICD-10 category prefix."""

    def __init__(self, terminology: Terminology) -> None:
        self.terminology = terminology

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2 or not all(isinstance(k, str) for k in key):
            return False
        return bool(self.terminology.condition_concepts(key[0], key[1]))


class _DrugCodes:
    """The drug codes the mappings know (an allergy to another substance is not read, so not checked)."""

    def __init__(self, terminology: Terminology) -> None:
        self.terminology = terminology

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2 or not all(isinstance(k, str) for k in key):
            return False
        return self.terminology.drug_for_code(key[0], key[1]) is not None


def _as_json(resource: dict[str, Any]) -> bytes | None:
    """The dict as JSON text, or None if it holds what JSON cannot (a dict made in code: Enums, dates, NaN)."""
    try:
        raw = orjson.dumps(resource, option=_JSON_ONLY)
    except orjson.JSONEncodeError:
        return None
    return raw if orjson.loads(raw) == resource else None


_JSON_ONLY = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _has_known_code(code: Any, known: Container[tuple[str, str]]) -> bool:
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return True  # malformed: let layers 2-3 say what is wrong
    return any(isinstance(c, dict) and _known(c.get("system"), c.get("code"), known) for c in codings)


def _known(system: Any, code: Any, known: Container[tuple[str, str]]) -> bool:
    """A known (system, code), or one that is not text at all (malformed: checked, so the layers say so)."""
    if not isinstance(system, str | None) or not isinstance(code, str | None):
        return True
    return (system, code) in known


def _has_known_shaped_code(shaped: Resource, known: Container[tuple[str, str]]) -> bool:
    """`_has_known_code` on the Struct of the entry (a JSON object is a Struct there, anything else as it is)."""
    code = getattr(shaped, "code", None)
    codings = code.coding if isinstance(code, CodeableConcept) else None
    if not isinstance(codings, list):
        return True
    for coding in codings:  # noqa: SIM110 (any() over a generator costs more, on every Observation)
        if isinstance(coding, Coding) and _known(coding.system, coding.code, known):
            return True
    return False
