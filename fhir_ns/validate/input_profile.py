"""Layer 5: the fhir-ns input profile, checked as the classifier reads the input.

The entries go through the classifier's own `FactCollector`, so every rule it applies (a subject, a
date with a day, a unit the mapping accepts for the concept, a plausible value, a drug code or name,
a dose with a unit, a patient in the input ...) is reported exactly as `convert` would. Added here is
only what the collector does not say: unknown LOINC/RxNorm/ATC codes and Procedures fhir-ns does not
read (information: the resource is not used), subjects that are not Patients, and negative values of concepts the mappings give no
plausible range for.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import msgspec
import orjson

from fhir_ns.fhir import shapes
from fhir_ns.fhir.extract import READ_TYPES, FactCollector
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.terminology import ATC, Terminology
from fhir_ns.validate.output_profile import fhir_ns_base

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DRUG_SYSTEMS = {RXNORM: "RxNorm", ATC: "ATC"}
MEDICATION_USE = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")


class InputProfile:
    """Entries are added one at a time as they are read; `finish` then gives the classifier's problems with
    them (which it can only tell once every patient's records are in), `add` this layer's own at once."""

    def __init__(self, terminology: Terminology, spill: SpillLimit | None = None) -> None:
        self.terminology = terminology
        self.problems: list[Problem] = []
        self.collector = FactCollector(terminology, self.problems, spill)

    def add(self, entry: Entry, text: bytes | None = None) -> list[Problem]:
        """Read one entry as the classifier does; this layer's own problems with it. `text`: the resource's JSON
        text as orjson writes it, if the caller has it (decoding it typed costs less than converting the dict)."""
        rtype = entry.resource.get("resourceType")
        if rtype not in READ_TYPES:
            self.collector.add(entry)
            return []
        if fhir_ns_base(entry.resource) is not None:  # a measure fhir-ns wrote: output, held to the output profile
            return []
        try:  # (not contextlib.suppress, which costs a microsecond a resource)
            shaped = None if text is None else shapes.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            shaped = None  # then the dict is read as `add` reads it
        if shaped is None:
            self.collector.add(entry)
        else:  # what `add` files for the dict: its shape, and its text with sorted keys
            raw = orjson.dumps(entry.resource, option=orjson.OPT_SORT_KEYS)
            self.collector.add_shaped(shaped, raw, entry.location, entry.full_url)
        return _extra(entry, self.collector)

    def finish(self) -> Iterator[Problem]:
        """The classifier's problems: those of the input as a whole, then each patient's, one patient at a time."""
        patients = self.collector.each_patient()
        first = next(patients, None)  # once the first patient is assembled, the input's own problems are all said
        yield from self.problems
        if first is not None:
            yield from first.problems
        for patient in patients:
            yield from patient.problems


def _extra(entry: Entry, collector: FactCollector) -> list[Problem]:
    """This layer's own problems with an entry of a type the classifier reads (the collector's terminology, and its
    memory of the drugs codes and names name)."""
    term = collector.term
    res = entry.resource
    rtype = res["resourceType"]
    rid = res.get("id")
    source = f"{rtype}/{rid}" if isinstance(rid, str) else None
    out: list[Problem] = []
    say = partial(_say, out, entry.location, source)  # (a partial: a closure would make every local here a cell)

    subject = res.get("subject") or (res.get("patient") if rtype != "Patient" else None)
    reference = subject.get("reference") if isinstance(subject, dict) else None
    # `Patient/<id>` (the usual subject) is a Patient's reference whatever the id: its parts need no splitting
    usual = isinstance(reference, str) and reference.startswith("Patient/") and reference.count("/") == 1
    if isinstance(reference, str) and not usual and not reference.startswith(("urn:", "#")):
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] != "Patient":
            say(
                "warning",
                "invalid",
                f"subject {reference} is not a Patient; fhir-ns files it as a patient of its own",
                "subject",
            )
    if rtype == "Observation":
        codings = _codings(res.get("code"))
        known = term.observation_codes
        concept = None
        for coding in codings:
            key = _key(coding)
            if key in known:
                concept = known[key]
                break
        if concept is None:
            loinc = [c.get("code") for c in codings if c.get("system") == LOINC]
            if loinc:
                say(
                    "information",
                    "code-unknown",
                    f"LOINC {', '.join(map(str, loinc))} is not a code fhir-ns reads; the Observation is not used",
                    "code",
                )
        elif concept:
            if term.concepts[concept].panel:
                out.extend(_panel_components(res, term, entry, source))
            quantity = res.get("valueQuantity")
            value = quantity.get("value") if isinstance(quantity, dict) else None
            negative = isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0
            if negative and not term.concepts[concept].plausible:
                say(
                    "error",
                    "value",
                    f"a negative {term.concepts[concept].label} ({value:g}) is not a measurement",
                    "valueQuantity.value",
                )
    elif rtype == "Procedure":
        concept = res.get("code")
        coded = any(_key(c) in term.procedure_codes for c in _codings(concept))
        texts = (
            [concept.get("text")] + [c.get("display") for c in _codings(concept)] if isinstance(concept, dict) else []
        )
        if not coded and not any(isinstance(t, str) and term.procedure_for_text(t) for t in texts):
            say(
                "information",
                "code-unknown",
                "not a procedure fhir-ns reads (plasma exchange, dialysis, kidney transplant); not used",
                "code",
            )
    elif rtype in MEDICATION_USE or rtype == "Medication":
        concept = res.get("code") if rtype == "Medication" else _medication_concept(res)
        if concept is not None and _drug_unknown(concept, collector):
            codes = [
                f"{DRUG_SYSTEMS[str(c.get('system'))]} {c.get('code')}"
                for c in _codings(concept)
                if c.get("system") in DRUG_SYSTEMS
            ]
            if codes:
                element = "code" if rtype == "Medication" else "medication[x]"
                say("information", "code-unknown", f"{', '.join(codes)} is not a drug fhir-ns knows; not used", element)
    return out


def _say(
    out: list[Problem], location: Location, source: str | None, severity: Any, code: str, message: str, element: str
) -> None:
    out.append(Problem(severity, code, message, location, element, source))


def _panel_components(res: dict[str, Any], term: Terminology, entry: Entry, source: str | None) -> list[Problem]:
    """A panel's components (blood pressure 85354-9) coded with a LOINC fhir-ns does not read: not used."""
    out = []
    components = res.get("component")
    for i, part in enumerate(components if isinstance(components, list) else []):
        codings = _codings(part.get("code") if isinstance(part, dict) else None)
        if any(_key(c) in term.observation_codes for c in codings):
            continue
        loinc = [str(c.get("code")) for c in codings if c.get("system") == LOINC]
        if loinc:
            message = f"component LOINC {', '.join(loinc)} is not a code fhir-ns reads; the component is not used"
            out.append(Problem("information", "code-unknown", message, entry.location, f"component[{i}].code", source))
    return out


def _medication_concept(res: dict[str, Any]) -> Any:
    if isinstance(res.get("medicationCodeableConcept"), dict):
        return res["medicationCodeableConcept"]
    r5 = res.get("medication")
    return r5.get("concept") if isinstance(r5, dict) else None


def _drug_unknown(concept: Any, collector: FactCollector) -> bool:
    for coding in _codings(concept):
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str) and collector.drug_coded(system, code):
            return False
    texts = [concept.get("text")] + [c.get("display") for c in _codings(concept)]
    return not any(isinstance(t, str) and collector.drug_named(t) for t in texts)


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _key(coding: dict[str, Any]) -> tuple[str, str]:
    return str(coding.get("system") or ""), str(coding.get("code") or "")
