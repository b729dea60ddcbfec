"""The FHIR elements fhir-ns reads, as typed msgspec Structs: decoding skips every other element.

One Struct per resource type (tagged by `resourceType`) holds only what `extract` reads. The shapes
are lenient on purpose: an element of the wrong JSON type (a string where an object belongs, an
object where a list belongs) decodes as the plain value it is, never as a decoding error, so
`extract` reports it exactly as it would from a dict (`isinstance(x, Quantity)` where the dict
reader asked `isinstance(x, dict)`). Leaves the rules validate (values, codes, dates) are `Any` for
the same reason. `UNSET` marks an element that is absent, where absent and null differ.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

NotObject = str | int | float | bool | list[Any] | None  # any JSON value but an object
NotArray = str | int | float | bool | dict[str, Any] | None  # any JSON value but an array

__all__ = ["UNSET", "NotArray", "NotObject", "Resource", "decode", "decoder", "from_dict"]


class Coding(Struct, gc=False):
    system: Any = None
    code: Any = None
    display: Any = None


class CodeableConcept(Struct, gc=False):
    coding: list[Coding | NotObject] | NotArray = None
    text: Any = None


class Reference(Struct, gc=False):
    reference: Any = None


class CodeableReference(Struct, gc=False):
    """R5 `medication`: a concept or a reference."""

    concept: CodeableConcept | NotObject = None
    reference: Reference | NotObject = None


class Quantity(Struct, gc=False):
    value: Any = None
    unit: Any = None
    system: Any = None
    code: Any = None


class Range(Struct, gc=False):
    low: Quantity | NotObject = None
    high: Quantity | NotObject = None


class Meta(Struct, gc=False):
    lastUpdated: Any = None  # noqa: N815 (FHIR element names)


class Repeat(Struct, gc=False):
    boundsPeriod: Any = None  # noqa: N815
    boundsDuration: Quantity | NotObject = None  # noqa: N815
    frequency: Any = UNSET
    frequencyMax: Any = None  # noqa: N815
    period: Any = UNSET
    periodUnit: Any = None  # noqa: N815
    when: Any = None


class Timing(Struct, gc=False):
    repeat: Repeat | NotObject = None
    code: CodeableConcept | NotObject = None


class DoseAndRate(Struct, gc=False):
    doseQuantity: Quantity | NotObject = None  # noqa: N815
    doseRange: Range | NotObject = None  # noqa: N815


class Dosage(Struct, gc=False):
    """Dosage of a MedicationStatement or MedicationRequest."""

    sequence: Any = None
    timing: Timing | NotObject = None
    route: CodeableConcept | NotObject = None
    doseAndRate: list[DoseAndRate | NotObject] | NotArray = None  # noqa: N815


class AdministrationDosage(Struct, gc=False):
    route: CodeableConcept | NotObject = None
    dose: Quantity | NotObject = None


class DispenseRequest(Struct, gc=False):
    validityPeriod: Any = None  # noqa: N815
    expectedSupplyDuration: Quantity | NotObject = None  # noqa: N815


class Contained(Struct, gc=False):
    """A contained resource: its id and, for a Medication, its code."""

    id: Any = None
    code: CodeableConcept | NotObject = None


class Component(Struct, gc=False):
    code: CodeableConcept | NotObject = None
    valueQuantity: Quantity | NotObject = None  # noqa: N815
    valueCodeableConcept: CodeableConcept | NotObject = None  # noqa: N815
    valueString: Any = None  # noqa: N815


class Resource(Struct, tag_field="resourceType", gc=False):
    id: Any = None
    meta: Meta | NotObject = None

    @property
    def resource_type(self) -> str:
        return str(type(self).__struct_config__.tag)


class Patient(Resource, tag="Patient"):
    birthDate: Any = UNSET  # noqa: N815
    gender: Any = None


class Medication(Resource, tag="Medication"):
    code: CodeableConcept | NotObject = None


class _Subject(Resource):
    subject: Reference | NotObject = None
    patient: Reference | NotObject = None


class Observation(_Subject, tag="Observation"):
    status: Any = None
    code: CodeableConcept | NotObject = None
    effectiveDateTime: Any = None  # noqa: N815
    effectiveInstant: Any = None  # noqa: N815
    effectivePeriod: Any = None  # noqa: N815
    dataAbsentReason: Any = UNSET  # noqa: N815
    valueQuantity: Quantity | NotObject | UnsetType = UNSET  # noqa: N815
    valueCodeableConcept: CodeableConcept | NotObject | UnsetType = UNSET  # noqa: N815
    valueString: Any = UNSET  # noqa: N815
    # the other value[x]: only whether one is there matters
    valueBoolean: Any = UNSET  # noqa: N815
    valueInteger: Any = UNSET  # noqa: N815
    valueRange: Any = UNSET  # noqa: N815
    valueRatio: Any = UNSET  # noqa: N815
    valueSampledData: Any = UNSET  # noqa: N815
    valueTime: Any = UNSET  # noqa: N815
    valueDateTime: Any = UNSET  # noqa: N815
    valuePeriod: Any = UNSET  # noqa: N815
    valueAttachment: Any = UNSET  # noqa: N815
    valueReference: Any = UNSET  # noqa: N815
    component: list[Component | NotObject] | NotArray = None

    def has_value(self) -> bool:
        """Is any value[x] element present (even null)?"""
        return any(getattr(self, name) is not UNSET for name in VALUE_ELEMENTS)


VALUE_ELEMENTS = tuple(name for name in Observation.__struct_fields__ if name.startswith("value"))


class _Onset(_Subject):
    """A Condition or an AllergyIntolerance: a coded state with its status, since a day."""

    clinicalStatus: CodeableConcept | NotObject = None  # noqa: N815
    verificationStatus: CodeableConcept | NotObject = None  # noqa: N815
    code: CodeableConcept | NotObject = None
    onsetDateTime: Any = None  # noqa: N815
    onsetPeriod: Any = None  # noqa: N815
    recordedDate: Any = None  # noqa: N815


class Condition(_Onset, tag="Condition"):
    abatementDateTime: Any = None  # noqa: N815
    abatementPeriod: Any = None  # noqa: N815


class _MedicationUse(_Subject):
    status: Any = None
    medicationCodeableConcept: CodeableConcept | NotObject = None  # noqa: N815
    medicationReference: Reference | NotObject = None  # noqa: N815
    medication: CodeableReference | NotObject = None  # R5
    contained: list[Contained | NotObject] | NotArray = None


class MedicationStatement(_MedicationUse, tag="MedicationStatement"):
    effectivePeriod: Any = None  # noqa: N815
    effectiveDateTime: Any = None  # noqa: N815
    dosage: list[Dosage | NotObject] | NotArray = None
    statusReason: list[CodeableConcept | NotObject] | NotArray = None  # noqa: N815 (R4: a list)


class MedicationRequest(_MedicationUse, tag="MedicationRequest"):
    intent: Any = None
    authoredOn: Any = None  # noqa: N815
    dosageInstruction: list[Dosage | NotObject] | NotArray = None  # noqa: N815
    dispenseRequest: DispenseRequest | NotObject = None  # noqa: N815
    statusReason: CodeableConcept | NotObject = None  # noqa: N815


class MedicationAdministration(_MedicationUse, tag="MedicationAdministration"):
    effectiveDateTime: Any = None  # noqa: N815
    effectivePeriod: Any = None  # noqa: N815
    occurenceDateTime: Any = None  # noqa: N815 (a misspelling seen in the wild)
    occurrenceDateTime: Any = None  # noqa: N815
    occurencePeriod: Any = None  # noqa: N815
    occurrencePeriod: Any = None  # noqa: N815
    dosage: AdministrationDosage | NotObject = None


class Procedure(_Subject, tag="Procedure"):
    """A procedure done to the patient (plasma exchange, dialysis, kidney transplant)."""

    status: Any = None
    code: CodeableConcept | NotObject = None
    performedDateTime: Any = None  # noqa: N815
    performedPeriod: Any = None  # noqa: N815
    occurrenceDateTime: Any = None  # noqa: N815 (R5)
    occurrencePeriod: Any = None  # noqa: N815 (R5)


class AllergyIntolerance(_Onset, tag="AllergyIntolerance"):
    """An allergy or intolerance to a substance: fhir-ns reads those naming a drug it knows."""


Shaped = (
    Patient
    | Medication
    | Observation
    | Condition
    | MedicationStatement
    | MedicationRequest
    | MedicationAdministration
    | Procedure
    | AllergyIntolerance
)
READ_TYPES = frozenset(str(t.__struct_config__.tag) for t in Shaped.__args__)  # type: ignore[attr-defined]

decoder: msgspec.json.Decoder[Shaped] = msgspec.json.Decoder(Shaped)  # type: ignore[arg-type]
decode = decoder.decode


def from_dict(resource: dict[str, Any]) -> Resource:
    """The shape of a resource already parsed into a dict (of a type in READ_TYPES)."""
    return msgspec.convert(resource, Shaped)  # type: ignore[arg-type,no-any-return]
