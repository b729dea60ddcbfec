"""FHIR resources (plain dicts) to the episode model's facts, grouped by patient.

This is the only place that knows where in an R4/R4B/R5 Observation, Medication*, Condition or
Patient the values the rules need are kept. Problems are attributed to the patient when possible, so
one bad resource refuses its own patient and no other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import orjson

from fhir_ns.fhir.dates import DateError, parse_birth_date, parse_day
from fhir_ns.fhir.problems import Location, Problem, Severity
from fhir_ns.fhir.reader import Entry
from fhir_ns.terminology import Terminology
from fhir_ns.timeline.model import ConditionFact, DrugExposure, GeneticResult, Measurement, PatientFacts

UCUM = "http://unitsofmeasure.org"
READ_TYPES = frozenset(
    {
        "Patient",
        "Observation",
        "Condition",
        "MedicationStatement",
        "MedicationRequest",
        "MedicationAdministration",
        "Medication",
    }
)
OBSERVATION_SKIP = {"cancelled", "entered-in-error", "registered"}
STATEMENT_SKIP = {"entered-in-error", "not-taken", "intended", "draft"}
REQUEST_SKIP = {"cancelled", "entered-in-error", "draft"}
REQUEST_INTENT_SKIP = {"proposal"}
ADMINISTRATION_SKIP = {"not-done", "entered-in-error"}
ONGOING_STATUSES = {"active", "on-hold", "in-progress", "unknown", "recorded"}
ACTIVE_CONDITION = {"active", "recurrence", "relapse"}
CONDITION_SKIP_VERIFICATION = {"refuted", "entered-in-error"}
# Dosage.timing.code (v3 GTSAbbreviation): administrations per day
TIMING_CODES = {
    "QD": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "AM": 1.0,
    "PM": 1.0,
    "QOD": 0.5,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "Q12H": 2.0,
}
PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}
DOSE_UNITS = {
    "mg": ("mg", 1.0),
    "g": ("mg", 1000.0),
    "ug": ("mg", 0.001),
    "mcg": ("mg", 0.001),
    "mg/kg": ("mg/kg", 1.0),
    "mg/m2": ("mg/m2", 1.0),
    "mg/m.2": ("mg/m2", 1.0),
}


class _Refused(Exception):
    """A resource the rules cannot use; the message says why, `element` where."""

    def __init__(self, message: str, element: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.element = element
        self.code = code


@dataclass(slots=True)
class _Record:
    rtype: str
    rid: str | None
    patient_ref: str | None
    last_updated: str
    location: Location
    source: str = ""
    payload: Any = None  # Measurement | DrugExposure | ConditionFact | GeneticResult | _PendingExposure
    problems: list[Problem] = field(default_factory=list)
    raw: bytes = b""


@dataclass(slots=True)
class _PendingExposure:
    """A drug exposure whose drug is named by a Medication resource found elsewhere in the input."""

    medication_ref: str
    resource: dict[str, Any]


@dataclass(slots=True)
class PatientInput:
    """A patient's facts and the problems of their resources; `refused` when any problem is an error."""

    facts: PatientFacts
    problems: list[Problem]

    @property
    def refused(self) -> bool:
        return any(p.severity in ("error", "fatal") for p in self.problems)


class FactCollector:
    """Feed it entries with `add`; `patients()` returns each patient's facts once the input is read."""

    def __init__(self, terminology: Terminology, problems: list[Problem]) -> None:
        self.term = terminology
        self.problems = problems
        self._records: dict[tuple[str, str], _Record] = {}
        self._anonymous: list[_Record] = []
        self._patients: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}
        self._medications: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}

    # -- reading ---------------------------------------------------------------------------------
    def add_all(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def add(self, entry: Entry) -> None:
        resource, location = entry.resource, entry.location
        rtype = resource["resourceType"]
        self.counts[rtype] = self.counts.get(rtype, 0) + 1
        if rtype not in READ_TYPES:
            return
        rid = resource.get("id") if isinstance(resource.get("id"), str) else None
        if rtype == "Patient":
            self._add_patient(resource, rid, entry)
            return
        if rtype == "Medication":
            for key in _keys(rtype, rid, entry.full_url):
                self._medications[key] = resource
            return
        record = _Record(
            rtype, rid, None, _last_updated(resource), location, raw=orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        )
        source = _source(rtype, rid, entry.full_url, location)
        record.source = source
        try:
            record.patient_ref = self._subject(resource, rtype)
            record.payload = self._extract(rtype, resource, source, record)
        except _Refused as exc:
            record.problems.append(Problem("error", exc.code, str(exc), location, exc.element, source))
        self._keep(record)

    def _keep(self, record: _Record) -> None:
        if record.rid is None:
            self._anonymous.append(record)
            return
        key = (record.rtype, record.rid)
        old = self._records.get(key)
        if old is None:
            self._records[key] = record
            return
        if old.raw == record.raw:
            self._note(old, "information", "duplicate", f"identical copy at {record.location} ignored")
            return
        keep, drop = (record, old) if record.last_updated > old.last_updated else (old, record)
        reason = (
            "later meta.lastUpdated"
            if record.last_updated != old.last_updated
            else "first seen; no later meta.lastUpdated"
        )
        self._records[key] = keep
        self._note(keep, "warning", "duplicate", f"another version at {drop.location} was ignored ({reason})")

    def _note(self, record: _Record, severity: Severity, code: str, message: str, element: str | None = None) -> None:
        source = f"{record.rtype}/{record.rid}" if record.rid else None
        record.problems.append(Problem(severity, code, message, record.location, element, source))

    def _add_patient(self, resource: dict[str, Any], rid: str | None, entry: Entry) -> None:
        if rid is None:
            self.problems.append(
                Problem(
                    "error",
                    "required",
                    "Patient has no id; its resources cannot be matched to it",
                    entry.location,
                    "id",
                )
            )
            return
        info: dict[str, Any] = {"problems": [], "location": entry.location}
        if "birthDate" in resource:
            try:
                info["birth_date"], exact = parse_birth_date(resource["birthDate"])
                if not exact:
                    info["problems"].append(
                        Problem(
                            "warning",
                            "value",
                            f"birthDate {resource['birthDate']} is partial; placed mid-period",
                            entry.location,
                            "birthDate",
                            f"Patient/{rid}",
                        )
                    )
            except DateError as exc:
                info["problems"].append(
                    Problem("error", "value", str(exc), entry.location, "birthDate", f"Patient/{rid}")
                )
        gender = resource.get("gender")
        info["sex"] = gender if gender in ("male", "female") else None
        if rid in self._patients:
            self._patients[rid]["problems"].append(
                Problem(
                    "warning",
                    "duplicate",
                    f"Patient/{rid} appears again at {entry.location}; first kept",
                    entry.location,
                    None,
                    f"Patient/{rid}",
                )
            )
        else:
            self._patients[rid] = info
        for key in _keys("Patient", rid, entry.full_url):
            self._aliases[key] = rid

    def _subject(self, resource: dict[str, Any], rtype: str) -> str:
        element = "patient" if rtype == "DetectedIssue" else "subject"
        ref = resource.get("subject") or resource.get("patient")
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            raise _Refused(
                "no subject/patient reference; the resource cannot be placed on a patient's timeline",
                element,
                "required",
            )
        return _normalise_reference(ref["reference"])

    # -- per resource type ------------------------------------------------------------------------
    def _extract(self, rtype: str, resource: dict[str, Any], source: str, record: _Record) -> Any:
        if rtype == "Observation":
            return self._observation(resource, source, record)
        if rtype == "Condition":
            return self._condition(resource, source, record)
        return self._medication_use(rtype, resource, source, record)

    def _observation(self, obs: dict[str, Any], source: str, record: _Record) -> Any:
        if obs.get("status") in OBSERVATION_SKIP:
            return None
        concept_name = None
        for coding in _codings(obs.get("code")):
            concept_name = self.term.observation_codes.get(_key(coding))
            if concept_name:
                break
        if concept_name is None:
            return None  # not a concept fhir-ns uses; counted, not reported
        concept = self.term.concepts[concept_name]
        day = self._effective_day(obs, ("effectiveDateTime", "effectiveInstant", "effectivePeriod"))
        if concept.genetic:
            return self._genetic(obs, day, source)
        if concept.ordinal:
            grade = self._dipstick_grade(obs)
            return Measurement(concept_name, day, float(grade), "grade", source)
        quantity = obs.get("valueQuantity")
        if not isinstance(quantity, dict):
            if "dataAbsentReason" in obs or not any(k.startswith("value") for k in obs):
                self._note(record, "warning", "required", f"{concept.label} without a value; ignored", "value[x]")
                return None
            raise _Refused(f"{concept.label} needs a valueQuantity", "value[x]", "value")
        value = quantity.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _Refused(f"valueQuantity.value is not a number: {value!r}", "valueQuantity.value", "value")
        unit = _unit(quantity)
        rule = concept.unit_rule(unit)
        if rule is None:
            accepted = ", ".join(concept.units) or "none"
            raise _Refused(
                f"unit {unit!r} is not accepted for {concept.label} (accepted: {accepted})",
                "valueQuantity.code",
                "code-invalid",
            )
        converted = float(value) * rule.factor
        bounds = concept.plausible.get(rule.family)
        if bounds and not bounds[0] <= converted <= bounds[1]:
            raise _Refused(
                f"{concept.label} {value:g} {unit} is implausible (outside {bounds[0]:g}-{bounds[1]:g} {rule.family})",
                "valueQuantity.value",
                "value",
            )
        return Measurement(concept_name, day, converted, rule.family, source)

    def _dipstick_grade(self, obs: dict[str, Any]) -> int:
        quantity = obs.get("valueQuantity")
        if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
            unit = _unit(quantity)
            if unit not in ("mg/dL", None):
                raise _Refused(
                    f"dipstick unit {unit!r} is not accepted (accepted: mg/dL)", "valueQuantity.code", "code-invalid"
                )
            return self.term.grade_from_mg_dl(float(quantity["value"]))
        texts: list[str] = []
        if isinstance(obs.get("valueString"), str):
            texts.append(obs["valueString"])
        concept = obs.get("valueCodeableConcept")
        if isinstance(concept, dict):
            for coding in _codings(concept):
                grade = self.term.dipstick_codes.get(_key(coding))
                if grade is not None:
                    return grade
                texts.extend(str(coding[k]) for k in ("code", "display") if coding.get(k))
            if isinstance(concept.get("text"), str):
                texts.append(concept["text"])
        for text in texts:
            grade = self.term.grade_from_text(text)
            if grade is not None:
                return grade
        if not texts:
            raise _Refused("dipstick result has no value", "value[x]", "required")
        raise _Refused(
            f"dipstick value {texts[0]!r} is not a known grade ({', '.join(self.term.dipstick_grades)})",
            "value[x]",
            "code-invalid",
        )

    def _genetic(self, obs: dict[str, Any], day: date, source: str) -> GeneticResult:
        concepts: set[str] = set()
        genes: list[str] = []
        pathogenic = False
        parts = [obs, *[c for c in obs.get("component") or [] if isinstance(c, dict)]]
        for part in parts:
            for key in ("code", "valueCodeableConcept"):
                for coding in _codings(part.get(key)):
                    gene = self.term.gene_codes.get(_key(coding))
                    if gene:
                        concepts.add(gene[0])
                        genes.append(gene[1])
                    if _key(coding) in self.term.pathogenic_answers:
                        pathogenic = True
                value = part.get(key) if key == "valueCodeableConcept" else None
                texts = [value.get("text")] if isinstance(value, dict) else []
                texts += [c.get("display") for c in _codings(value)]
                pathogenic = pathogenic or any(_says_pathogenic(t) for t in texts if isinstance(t, str))
            if isinstance(part.get("valueString"), str):
                pathogenic = pathogenic or _says_pathogenic(part["valueString"])
        return GeneticResult(frozenset(concepts), tuple(genes), pathogenic, day, source)

    def _condition(self, cond: dict[str, Any], source: str, record: _Record) -> ConditionFact | None:
        verification = _first_code(cond.get("verificationStatus"))
        if verification in CONDITION_SKIP_VERIFICATION:
            return None
        concepts: set[str] = set()
        for coding in _codings(cond.get("code")):
            concepts |= self.term.condition_codes.get(_key(coding), frozenset())
        if not concepts:
            return None
        onset = None
        for key, element in (
            ("onsetDateTime", "onsetDateTime"),
            ("onsetPeriod", "onsetPeriod.start"),
            ("recordedDate", "recordedDate"),
        ):
            value = cond.get(key)
            if isinstance(value, dict):
                value = value.get("start")
            if value is not None:
                try:
                    onset = parse_day(value)
                except DateError as exc:
                    raise _Refused(str(exc), element, "value") from exc
                break
        if onset is None:
            self._note(
                record,
                "warning",
                "required",
                "condition has no onset or recorded date; taken as present throughout",
                "onset[x]",
            )
        abatement = None
        abate = cond.get("abatementDateTime") or (cond.get("abatementPeriod") or {}).get("end")
        if abate is not None:
            try:
                abatement = parse_day(abate)
            except DateError as exc:
                raise _Refused(str(exc), "abatement[x]", "value") from exc
        clinical = _first_code(cond.get("clinicalStatus"))
        active = clinical is None or clinical in ACTIVE_CONDITION
        return ConditionFact(frozenset(concepts), onset, abatement, active, source)

    def _medication_use(self, rtype: str, res: dict[str, Any], source: str, record: _Record) -> Any:
        status = res.get("status")
        if rtype == "MedicationStatement" and status in STATEMENT_SKIP:
            return None
        if rtype == "MedicationRequest" and (status in REQUEST_SKIP or res.get("intent") in REQUEST_INTENT_SKIP):
            return None
        if rtype == "MedicationAdministration" and status in ADMINISTRATION_SKIP:
            return None
        concept, reference = _medication_of(res)
        if concept is None and reference is not None:
            if reference.startswith("#"):
                contained = {c.get("id"): c for c in res.get("contained") or [] if isinstance(c, dict)}
                medication = contained.get(reference[1:])
                if medication is None:
                    raise _Refused(f"contained medication {reference} not found", "medicationReference", "not-found")
                concept = medication.get("code")
            else:
                return _PendingExposure(reference, res)
        return self._exposure(rtype, res, concept, source, record)

    def _exposure(
        self, rtype: str, res: dict[str, Any], concept: Any, source: str, record: _Record
    ) -> DrugExposure | None:
        drug_name, by_name = self._drug(concept)
        if drug_name is None:
            return None
        drug = self.term.drugs[drug_name]
        if by_name:
            self._note(
                record,
                "information",
                "code-unknown",
                f"medication matched to {drug_name} by its name, not by a known code",
                "medication[x]",
            )
        status = res.get("status")
        if rtype == "MedicationAdministration":
            dosages = [res["dosage"]] if isinstance(res.get("dosage"), dict) else []
            start, end = self._period(
                res,
                (
                    "effectiveDateTime",
                    "effectivePeriod",
                    "occurenceDateTime",
                    "occurrenceDateTime",
                    "occurencePeriod",
                    "occurrencePeriod",
                ),
            )
            end = start
            daily, basis, alternate = self._administered_dose(dosages)
            single = True
        else:
            dosages = [
                d
                for d in res.get("dosage" if rtype == "MedicationStatement" else "dosageInstruction") or []
                if isinstance(d, dict)
            ]
            if rtype == "MedicationStatement":
                start, end = self._period(res, ("effectivePeriod", "effectiveDateTime"))
            else:
                start, end = self._request_period(res, dosages)
            daily, basis, alternate = self._daily_dose(dosages, record)
            single = False
            if end is None and status not in ONGOING_STATUSES:
                self._note(
                    record,
                    "warning",
                    "incomplete",
                    f"status {status} but no end date; counted as one day",
                    "effective[x]",
                )
                end = start
        if end is not None and end < start:
            raise _Refused(f"ends ({end}) before it starts ({start})", "effectivePeriod", "value")
        route = _route(dosages)
        return DrugExposure(drug_name, drug.drug_class, start, end, daily, basis, "", alternate, route, single, by_name)

    def _drug(self, concept: Any) -> tuple[str | None, bool]:
        for coding in _codings(concept):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                drug = self.term.drug_for_code(system, code)
                if drug:
                    return drug, False
        texts = [concept.get("text")] if isinstance(concept, dict) else []
        texts += [c.get("display") for c in _codings(concept)]
        for text in texts:
            if isinstance(text, str):
                drug = self.term.drug_for_text(text)
                if drug:
                    return drug, True
        return None, False

    def _effective_day(self, res: dict[str, Any], keys: tuple[str, ...]) -> date:
        start, _ = self._period(res, keys)
        return start

    def _period(self, res: dict[str, Any], keys: tuple[str, ...]) -> tuple[date, date | None]:
        for key in keys:
            value = res.get(key)
            if value is None:
                continue
            try:
                if isinstance(value, dict):
                    if value.get("start") is None:
                        raise _Refused(f"{key} has no start", f"{key}.start", "required")
                    end = parse_day(value["end"]) if value.get("end") is not None else None
                    return parse_day(value["start"]), end
                day = parse_day(value)
                return day, None
            except DateError as exc:
                raise _Refused(str(exc), key, "value") from exc
        element = re.sub(r"(DateTime|Period|Instant)$", "[x]", keys[0])
        raise _Refused("no date: none of " + ", ".join(keys), element, "required")

    def _request_period(self, req: dict[str, Any], dosages: list[dict[str, Any]]) -> tuple[date, date | None]:
        for dosage in dosages:
            repeat = (dosage.get("timing") or {}).get("repeat") or {}
            if isinstance(repeat.get("boundsPeriod"), dict):
                return self._period(repeat, ("boundsPeriod",))
        dispense = req.get("dispenseRequest") or {}
        if isinstance(dispense.get("validityPeriod"), dict) and dispense["validityPeriod"].get("start"):
            return self._period(dispense, ("validityPeriod",))
        start, _ = self._period(req, ("authoredOn",))
        for dosage in dosages:
            repeat = (dosage.get("timing") or {}).get("repeat") or {}
            duration = repeat.get("boundsDuration")
            if isinstance(duration, dict):
                return start, start + _duration(duration, "boundsDuration") - timedelta(days=1)
        supply = dispense.get("expectedSupplyDuration")
        if isinstance(supply, dict):
            return start, start + _duration(supply, "dispenseRequest.expectedSupplyDuration") - timedelta(days=1)
        return start, None

    def _daily_dose(self, dosages: list[dict[str, Any]], record: _Record) -> tuple[float | None, str, bool]:
        total = 0.0
        basis: str | None = None
        alternate = False
        for dosage in dosages:
            amount = _dose_amount(dosage.get("doseAndRate"))
            if amount is None:
                continue
            per_admin, unit = amount
            per_day = _administrations_per_day(dosage.get("timing"))
            if per_day is None:
                self._note(
                    record, "warning", "incomplete", "dosage has no timing; taken as once a day", "dosage.timing"
                )
                per_day = 1.0
            if basis is not None and basis != unit:
                raise _Refused(f"dosages mix {basis} and {unit}", "dosage.doseAndRate", "value")
            basis = unit
            total += per_admin * per_day
            alternate = alternate or abs(per_day - 0.5) < 1e-9
        if basis is None:
            if dosages:
                self._note(
                    record, "warning", "incomplete", "no dose quantity; dose-based rules cannot use it", "dosage"
                )
            return None, "mg", False
        return total, basis, alternate

    def _administered_dose(self, dosages: list[dict[str, Any]]) -> tuple[float | None, str, bool]:
        for dosage in dosages:
            quantity = dosage.get("dose")
            if isinstance(quantity, dict):
                amount = _quantity_mg(quantity, "dosage.dose")
                if amount:
                    return amount[0], amount[1], False
        return None, "mg", False

    # -- grouping --------------------------------------------------------------------------------
    def patients(self) -> list[PatientInput]:
        """Each patient's facts, with Medication references resolved and duplicates settled."""
        by_patient: dict[str, PatientInput] = {}
        for pid, info in self._patients.items():
            facts = PatientFacts(
                patient_id=pid, reference=f"Patient/{pid}", birth_date=info.get("birth_date"), sex=info.get("sex")
            )
            by_patient[pid] = PatientInput(facts, list(info["problems"]))
        for record in [*self._records.values(), *self._anonymous]:
            if record.patient_ref is None:
                self.problems.extend(record.problems)
                continue
            pid = self._aliases.get(record.patient_ref) or _id_of(record.patient_ref)
            patient = by_patient.get(pid)
            if patient is None:
                patient = PatientInput(PatientFacts(patient_id=pid, reference=record.patient_ref), [])
                patient.problems.append(
                    Problem(
                        "warning",
                        "not-found",
                        f"no Patient resource for {record.patient_ref} in the input; age and sex unknown",
                        record.location,
                        "subject",
                        None,
                        pid,
                    )
                )
                by_patient[pid] = patient
            source = record.source
            payload = record.payload
            if isinstance(payload, _PendingExposure):
                payload = self._resolve(record, payload, source)
            patient.problems.extend(_attributed(p, pid) for p in record.problems)
            _file(patient.facts, payload, source)
        for patient in by_patient.values():
            patient.facts.sort()
        return [by_patient[k] for k in sorted(by_patient)]

    def _resolve(self, record: _Record, pending: _PendingExposure, source: str) -> DrugExposure | None:
        medication = self._medications.get(pending.medication_ref)
        if medication is None:
            self._note(
                record,
                "warning",
                "not-found",
                f"{pending.medication_ref} is not in the input; this drug exposure is ignored",
                "medicationReference",
            )
            return None
        try:
            return self._exposure(record.rtype, pending.resource, medication.get("code"), source, record)
        except _Refused as exc:
            record.problems.append(Problem("error", exc.code, str(exc), record.location, exc.element, source))
            return None


def _file(facts: PatientFacts, payload: Any, source: str) -> None:
    if payload is None:
        return
    facts.sources.add(source)
    if isinstance(payload, Measurement):
        facts.measurements.append(payload)
    elif isinstance(payload, DrugExposure):
        facts.exposures.append(_with_source(payload, source))
    elif isinstance(payload, ConditionFact):
        facts.conditions.append(payload)
    elif isinstance(payload, GeneticResult):
        facts.genetics.append(payload)


def _with_source(exposure: DrugExposure, source: str) -> DrugExposure:
    return replace(exposure, source=source)


def _attributed(problem: Problem, pid: str) -> Problem:
    return replace(problem, patient=pid)


# -- small readers of FHIR datatypes -------------------------------------------------------------
def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _key(coding: dict[str, Any]) -> tuple[str, str]:
    """(system, code) of a Coding, for the code tables."""
    return str(coding.get("system") or ""), str(coding.get("code") or "")


def _first_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _unit(quantity: dict[str, Any]) -> str | None:
    code, system = quantity.get("code"), quantity.get("system")
    if isinstance(code, str) and (system in (None, UCUM)):
        return code
    unit = quantity.get("unit")
    return unit if isinstance(unit, str) else (code if isinstance(code, str) else None)


def _quantity_mg(quantity: dict[str, Any], element: str) -> tuple[float, str] | None:
    value = quantity.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Refused(f"dose is not a number: {value!r}", element, "value")
    unit = _unit(quantity)
    rule = DOSE_UNITS.get(unit or "")
    if rule is None:
        raise _Refused(
            f"dose unit {unit!r} is not understood (accepted: {', '.join(DOSE_UNITS)})", element, "code-invalid"
        )
    return float(value) * rule[1], rule[0]


def _dose_amount(dose_and_rate: Any) -> tuple[float, str] | None:
    for item in dose_and_rate or []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("doseQuantity"), dict):
            return _quantity_mg(item["doseQuantity"], "dosage.doseAndRate.doseQuantity")
        dose_range = item.get("doseRange")
        if (
            isinstance(dose_range, dict)
            and isinstance(dose_range.get("low"), dict)
            and isinstance(dose_range.get("high"), dict)
        ):
            low = _quantity_mg(dose_range["low"], "dosage.doseAndRate.doseRange.low")
            high = _quantity_mg(dose_range["high"], "dosage.doseAndRate.doseRange.high")
            if low and high and low[1] == high[1]:
                return (low[0] + high[0]) / 2, low[1]
    return None


def _administrations_per_day(timing: Any) -> float | None:
    if not isinstance(timing, dict):
        return None
    repeat = timing.get("repeat")
    if isinstance(repeat, dict) and ("frequency" in repeat or "period" in repeat):
        frequency = float(repeat.get("frequencyMax") or repeat.get("frequency") or 1)
        period = float(repeat.get("period") or 1)
        unit = repeat.get("periodUnit") or "d"
        days = period * PERIOD_DAYS.get(unit, 1.0)
        return frequency / days if days > 0 else None
    code = _first_code(timing.get("code"))
    if code in TIMING_CODES:
        return TIMING_CODES[code]
    if isinstance(repeat, dict) and repeat.get("when"):
        return float(len(repeat["when"]))
    return None


def _duration(duration: dict[str, Any], element: str) -> timedelta:
    value = duration.get("value")
    unit = duration.get("code") or duration.get("unit") or "d"
    if not isinstance(value, (int, float)) or unit not in PERIOD_DAYS:
        raise _Refused(f"duration {value!r} {unit!r} is not understood", element, "value")
    return timedelta(days=round(float(value) * PERIOD_DAYS[unit]))


def _route(dosages: list[dict[str, Any]]) -> str | None:
    for dosage in dosages:
        route = dosage.get("route")
        if not isinstance(route, dict):
            continue
        texts = [route.get("text") or ""] + [str(c.get("display") or c.get("code") or "") for c in _codings(route)]
        joined = " ".join(texts).lower()
        if "intraven" in joined or joined.split() and joined.split()[0] == "iv":
            return "iv"
        if "oral" in joined or "mouth" in joined or "po" in joined.split():
            return "oral"
        return joined.strip() or None
    return None


def _medication_of(res: dict[str, Any]) -> tuple[Any, str | None]:
    """(CodeableConcept, reference) from R4 medication[x] or R5 medication (CodeableReference)."""
    if isinstance(res.get("medicationCodeableConcept"), dict):
        return res["medicationCodeableConcept"], None
    ref = res.get("medicationReference")
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return None, _normalise_reference(ref["reference"])
    r5 = res.get("medication")
    if isinstance(r5, dict):
        if isinstance(r5.get("concept"), dict):
            return r5["concept"], None
        inner = r5.get("reference")
        if isinstance(inner, dict) and isinstance(inner.get("reference"), str):
            return None, _normalise_reference(inner["reference"])
    raise _Refused("no medication (medicationCodeableConcept or medicationReference)", "medication[x]", "required")


def _says_pathogenic(text: str) -> bool:
    lowered = text.lower()
    if "pathogenic" not in lowered:
        return False
    return not any(
        word in lowered for word in ("benign", "uncertain", "not pathogenic", "non-pathogenic", "nonpathogenic")
    )


def _last_updated(resource: dict[str, Any]) -> str:
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def _normalise_reference(ref: str) -> str:
    """`Patient/x`, `https://host/fhir/Patient/x/_history/2` -> `Patient/x`; urn:uuid and others kept."""
    ref = ref.strip()
    if ref.startswith(("urn:", "#")):
        return ref
    if "/_history/" in ref:
        ref = ref.split("/_history/")[0]
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 2:
        return f"{parts[-2]}/{parts[-1]}"
    return ref


def _keys(rtype: str, rid: str | None, full_url: str | None) -> list[str]:
    keys = []
    if rid:
        keys.append(f"{rtype}/{rid}")
    if full_url:
        keys.append(full_url if full_url.startswith("urn:") else _normalise_reference(full_url))
    return keys


def _id_of(ref: str) -> str:
    return ref.split("/", 1)[1] if ref.startswith("Patient/") else ref


def _source(rtype: str, rid: str | None, full_url: str | None, location: Location) -> str:
    if rid:
        return f"{rtype}/{rid}"
    if full_url:
        return full_url
    return f"{rtype} at {location}"
