"""The decode floor: the fastest this machine reads the cohort's JSON at all, doing nothing else.

`msgspec` decodes each NDJSON line into typed Structs holding only the fields fhir-ns reads (every other
field is skipped by the decoder); `orjson` decodes each line into plain dicts. fhir-ns cannot be faster
than the first and should not be much slower than it. `msgspec_grouped` adds the least Python any
classifier must run per resource (its patient, its code and its value kept under the patient): what
is left between it and fhir-ns is the work of the rules and of reporting.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson


class Coding(msgspec.Struct):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(msgspec.Struct):
    coding: list[Coding] = []
    text: str | None = None


class Reference(msgspec.Struct):
    reference: str | None = None


class Quantity(msgspec.Struct):
    value: float | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Period(msgspec.Struct):
    start: str | None = None
    end: str | None = None


class Meta(msgspec.Struct):
    lastUpdated: str | None = None  # noqa: N815 (FHIR's name)


class Repeat(msgspec.Struct):
    boundsPeriod: Period | None = None  # noqa: N815
    boundsDuration: Quantity | None = None  # noqa: N815
    frequency: int | None = None
    frequencyMax: int | None = None  # noqa: N815
    period: float | None = None
    periodUnit: str | None = None  # noqa: N815
    when: list[str] = []


class Timing(msgspec.Struct):
    repeat: Repeat | None = None
    code: CodeableConcept | None = None


class Range(msgspec.Struct):
    low: Quantity | None = None
    high: Quantity | None = None


class DoseAndRate(msgspec.Struct):
    doseQuantity: Quantity | None = None  # noqa: N815
    doseRange: Range | None = None  # noqa: N815


class Dosage(msgspec.Struct):
    timing: Timing | None = None
    route: CodeableConcept | None = None
    doseAndRate: list[DoseAndRate] = []  # noqa: N815
    dose: Quantity | None = None


class DispenseRequest(msgspec.Struct):
    validityPeriod: Period | None = None  # noqa: N815
    expectedSupplyDuration: Quantity | None = None  # noqa: N815


class Resource(msgspec.Struct, tag_field="resourceType"):
    id: str | None = None
    meta: Meta | None = None


class Patient(Resource, tag="Patient"):
    birthDate: str | None = None  # noqa: N815
    gender: str | None = None


class Medication(Resource, tag="Medication"):
    code: CodeableConcept | None = None


class Component(msgspec.Struct):
    code: CodeableConcept | None = None
    valueCodeableConcept: CodeableConcept | None = None  # noqa: N815
    valueString: str | None = None  # noqa: N815


class Observation(Resource, tag="Observation"):
    status: str | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    effectiveDateTime: str | None = None  # noqa: N815
    effectiveInstant: str | None = None  # noqa: N815
    effectivePeriod: Period | None = None  # noqa: N815
    valueQuantity: Quantity | None = None  # noqa: N815
    valueString: str | None = None  # noqa: N815
    valueCodeableConcept: CodeableConcept | None = None  # noqa: N815
    component: list[Component] = []


class Condition(Resource, tag="Condition"):
    clinicalStatus: CodeableConcept | None = None  # noqa: N815
    verificationStatus: CodeableConcept | None = None  # noqa: N815
    code: CodeableConcept | None = None
    subject: Reference | None = None
    onsetDateTime: str | None = None  # noqa: N815
    onsetPeriod: Period | None = None  # noqa: N815
    recordedDate: str | None = None  # noqa: N815
    abatementDateTime: str | None = None  # noqa: N815
    abatementPeriod: Period | None = None  # noqa: N815


class MedicationStatement(Resource, tag="MedicationStatement"):
    status: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    subject: Reference | None = None
    effectivePeriod: Period | None = None  # noqa: N815
    effectiveDateTime: str | None = None  # noqa: N815
    dosage: list[Dosage] = []


class MedicationRequest(Resource, tag="MedicationRequest"):
    status: str | None = None
    intent: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    subject: Reference | None = None
    authoredOn: str | None = None  # noqa: N815
    dosageInstruction: list[Dosage] = []  # noqa: N815
    dispenseRequest: DispenseRequest | None = None  # noqa: N815


AnyResource = Patient | Medication | Observation | Condition | MedicationStatement | MedicationRequest


def msgspec_floor(paths: list[Path]) -> int:
    """Decode every line into typed Structs of the needed fields; the count decoded."""
    decode = msgspec.json.Decoder(AnyResource).decode
    count = 0
    for path in paths:
        with path.open("rb") as fh:
            for line in fh:
                decode(line)
                count += 1
    return count


def orjson_floor(paths: list[Path]) -> int:
    """Decode every line into dicts with orjson; the count decoded."""
    loads = orjson.loads
    count = 0
    for path in paths:
        with path.open("rb") as fh:
            for line in fh:
                loads(line)
                count += 1
    return count


def msgspec_grouped(paths: list[Path]) -> int:
    """Decode every line and keep (code, value) of each resource under its patient: the least work a
    classifier written in Python does per resource, with no checks, no units and no rules."""
    decode = msgspec.json.Decoder(AnyResource).decode
    by_patient: dict[str | None, list[tuple[str | None, float | None]]] = {}
    count = 0
    for path in paths:
        with path.open("rb") as fh:
            for line in fh:
                resource = decode(line)
                count += 1
                subject = getattr(resource, "subject", None)
                code = getattr(resource, "code", None) or getattr(resource, "medicationCodeableConcept", None)
                quantity = getattr(resource, "valueQuantity", None)
                key = subject.reference if subject is not None else resource.id
                kept = by_patient.get(key)
                if kept is None:
                    kept = by_patient[key] = []
                kept.append((code.coding[0].code if code and code.coding else None, quantity and quantity.value))
    return count
