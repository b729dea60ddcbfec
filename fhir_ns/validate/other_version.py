"""Input of another FHIR version: a resource refused under the version asked for but sound under the other.

R5 changed shapes fhir-ns reads (MedicationStatement/MedicationRequest `medication` as a CodeableReference,
MedicationStatement.status `recorded`): an R5 file checked as R4 fails on them, and the message should say
which `--fhir-version` would read it rather than leave the user with "unknown element".
"""

from __future__ import annotations

from typing import Any

from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.spec import FhirVersion, load_spec
from fhir_ns.validate.structure import check_resource


def other_version(resource: dict[str, Any], version: FhirVersion) -> FhirVersion | None:
    """The other FHIR version (R5, or R4 when R5 was asked for) whose structure and required codes the
    resource meets, when it fails those of `version`; None otherwise."""
    other: FhirVersion = "R4" if version == "R5" else "R5"
    if any(i.is_error for i in check_resource(resource, other)):
        return None
    spec = load_spec(other)
    return None if any(i.is_error for i in check_bindings(walk(resource, spec), spec)) else other


def other_version_words(resource: dict[str, Any], version: FhirVersion) -> str | None:
    """ "this MedicationStatement is FHIR R5, not R4: use --fhir-version R5", or None."""
    other = other_version(resource, version)
    if other is None:
        return None
    return (
        f"this {resource.get('resourceType')} is shaped as FHIR {other} (it meets {other}'s structure and "
        f"required codes), not {version}: use --fhir-version {other}"
    )
