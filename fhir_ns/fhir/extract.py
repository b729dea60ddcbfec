"""FHIR resources to the episode model's facts, grouped by patient.

This is the only place that knows where in an R4/R4B/R5 Observation, Medication*, Condition or
Patient the values the rules need are kept. It reads the typed shapes of `shapes` (a dict is turned
into its shape first), keeps each resource as a compact record in a `RecordStore` (in memory, or on
disk above a size), and assembles each patient's facts when asked, one patient at a time. Problems
are attributed to the patient when possible, so one bad resource refuses its own patient and no other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import partial
from typing import Any, Protocol

import msgspec
import orjson

from fhir_ns.fhir import shapes
from fhir_ns.fhir.dates import DAY_CACHE, DateError, parse_birth_date, parse_day
from fhir_ns.fhir.problems import Location, Problem, Severity
from fhir_ns.fhir.reader import TYPED_ERRORS, Entry, Unit, scan
from fhir_ns.fhir.shapes import (
    UNSET,
    AdministrationDosage,
    CodeableConcept,
    CodeableReference,
    Coding,
    Component,
    Contained,
    DispenseRequest,
    Dosage,
    DoseAndRate,
    Meta,
    Quantity,
    Range,
    Reference,
    Repeat,
    Timing,
)
from fhir_ns.fhir.store import NO_PATIENT, Exported, Pending, RecordStore, SpillLimit, Stored, StoredProblem
from fhir_ns.terminology import Concept, Terminology
from fhir_ns.timeline.model import (
    ConditionFact,
    DrugExposure,
    GeneticResult,
    Intolerance,
    Measurement,
    Panel,
    PatientFacts,
    ProcedureFact,
    Taper,
)

UCUM = "http://unitsofmeasure.org"
READ_TYPES = shapes.READ_TYPES
OBSERVATION_SKIP = {"cancelled", "entered-in-error", "registered"}
STATEMENT_SKIP = {"entered-in-error", "not-taken", "intended", "draft"}
REQUEST_SKIP = {"cancelled", "entered-in-error", "draft"}
REQUEST_INTENT_SKIP = {"proposal"}
ADMINISTRATION_SKIP = {"not-done", "entered-in-error"}
ONGOING_STATUSES = {"active", "on-hold", "in-progress", "unknown", "recorded"}
ACTIVE_CONDITION = {"active", "recurrence", "relapse"}
CONDITION_SKIP_VERIFICATION = {"refuted", "entered-in-error"}
PROCEDURE_SKIP = {"preparation", "not-done", "entered-in-error", "unknown"}
PROCEDURE_ONGOING = {"in-progress", "on-hold"}
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
_TYPE_NAMES = {t: str(t.__struct_config__.tag) for t in shapes.Shaped.__args__}  # type: ignore[attr-defined]
_UNIT_SHIFT = 32  # Stored.seq = unit << 32 | order within the unit


class Gate(Protocol):
    """What `read` asks of a validation gate (fhir_ns.validate.gate.EntryGate)."""

    def check(self, entry: Entry) -> Sequence[Problem]: ...

    def check_raw(self, raw: bytes, rtype: str, location: Location, shaped: Any = None) -> Sequence[Problem]: ...


class _Refused(Exception):
    """A resource the rules cannot use; the message says why, `element` where."""

    def __init__(self, message: str, element: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.element = element
        self.code = code


# The resource being read: where its notes go (its problems, and its reference to name in them).
_Draft = tuple[list[StoredProblem], str | None]


@dataclass(slots=True)
class PatientInput:
    """A patient's facts and the problems of their resources; `refused` when any problem is an error."""

    facts: PatientFacts
    problems: list[Problem]
    unreadable: int = 0  # unreadable records that may be this patient's, skipped (--skip-unreadable)

    @property
    def refused(self) -> bool:
        return any(p.severity in ("error", "fatal") for p in self.problems)


@dataclass(slots=True)
class PatientRecord:
    """What a Patient resource says: birth date, sex, and the problems with it."""

    location: Location
    problems: list[Problem] = field(default_factory=list)
    birth_date: date | None = None
    sex: str | None = None
    own: int = 0  # how many of `problems` are about this copy itself (dropped when it turns out a duplicate)
    stamp: str = ""  # meta.lastUpdated, to choose between two versions of the Patient

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # sent between processes (--jobs) as plain values: about 40 % quicker than a dataclass's state
        where = self.location
        values = (self.problems, self.birth_date, self.sex, self.own, self.stamp)
        return _patient_record, (where.file, where.entry, where.line, *values)


def _patient_record(file: str, entry: int | None, line: int | None, *values: Any) -> PatientRecord:
    return PatientRecord(Location(file, entry, line), *values)


@dataclass(slots=True)
class Part:
    """What a collector read from one unit of input, to be merged with the others' (`--jobs`)."""

    unit: int
    lines: int  # lines in the unit (a piece of an NDJSON file): the next piece's numbering starts after
    files: list[str]
    counts: dict[str, int]
    problems: list[Problem]
    patients: dict[str, PatientRecord]
    aliases: dict[str, str]
    medications: dict[str, Any]
    refused_medications: set[str]
    records: Exported


@dataclass(slots=True)
class Cohort:
    """The patients to assemble, in order of id, each with the references their records are filed under."""

    patients: list[tuple[str, list[str]]]
    settled: _Settled


@dataclass(slots=True)
class UnitMap:
    """How to turn a record's file index and line back into its Location (one per unit read)."""

    files: list[str] = field(default_factory=list)
    line_offset: int = 0


class FactCollector:
    """Feed it entries with `add` (or whole inputs with `read`); `patients()` (or `each_patient()`)
    returns each patient's facts once the input is read."""

    def __init__(
        self,
        terminology: Terminology,
        problems: list[Problem],
        spill: SpillLimit | None = None,
        skip_unreadable: bool = False,
        planned: bool = False,
    ) -> None:
        self.term = terminology
        # a CDS order hook's draft MedicationRequests are the treatment about to be ordered: read them as orders
        self._request_skip = REQUEST_SKIP - {"draft"} if planned else REQUEST_SKIP
        self.problems = problems
        # A patient whose input file holds records that could not be read is refused (their data may be in
        # them), unless `skip_unreadable`: then evaluated, and the results say how many were skipped.
        self.skip_unreadable = skip_unreadable
        # file read -> the INPUT argument that named it: an unreadable record that names no patient may be
        # any patient's of that input (a bulk export's Observation.ndjson holds everyone's)
        self.inputs: dict[str, str] = {}
        self._lost: dict[str, list[Problem]] = {}  # input -> its unreadable records no patient can be named for
        self.store = RecordStore(spill)
        self._patients: dict[str, PatientRecord] = {}
        self._aliases: dict[str, str] = {}
        self._medications: dict[str, Any] = {}  # key -> the Medication's code
        self._refused_medications: set[str] = set()
        self._references: dict[str, str] = {}  # reference as written -> normalised
        self._drugs: dict[Any, str | None] = {}  # (system, code) or a name -> the drug it means
        self._units: dict[tuple[Any, ...], tuple[float, str, float, float] | None] = {}  # see _accepted_unit
        self.counts: dict[str, int] = {}
        self.units: list[UnitMap] = [UnitMap()]
        self._file_numbers: dict[str, int] = {}
        self._seq = 0

    # -- reading ---------------------------------------------------------------------------------
    def add_all(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def read(
        self,
        units: Iterable[Unit],
        gate: Gate | None = None,
        lines: dict[Unit, int] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Read every resource of the units (typed: the fast path); with `gate` (convert's validation
        gate), each entry is checked first and what it finds follows the entry (see `add`). `lines` is
        told how many lines each piece of an NDJSON file holds."""
        add = self._add
        usual = self._usual_observation
        counts = self.counts
        found: Sequence[Problem] = ()
        first_problem = len(self.problems)
        for resource, raw, name, index, line, full_url in scan(units, self.problems, True, lines, progress):
            if type(resource) is dict:
                entry = Entry(resource, Location(name, index, line), full_url)
                if gate is not None:
                    self.add(entry, gate.check(entry))
                    continue
                rtype = resource["resourceType"]
                if rtype not in READ_TYPES:
                    counts[rtype] = counts.get(rtype, 0) + 1
                    continue
                self.add(entry)
                continue
            raw = raw or b""
            if gate is not None:
                found = gate.check_raw(raw, _TYPE_NAMES[type(resource)], Location(name, index, line), resource)
            if not found and type(resource) is shapes.Observation and usual(resource, raw, name, index, line):
                continue
            add(resource, raw, name, index, line, full_url, found)
        self._claim_lost(first_problem)

    def _claim_lost(self, first: int) -> None:
        """File each unreadable record that still names its patient under that patient, with its error: it
        refuses that patient (and only that one) as any error in their input does."""
        problems = self.problems
        claimed = [p for p in problems[first:] if p.lost and p.names]
        if not claimed:
            return
        problems[first:] = [p for p in problems[first:] if not (p.lost and p.names)]
        for p in claimed:
            assert p.names is not None
            ref = self._references.get(p.names) or _normalise_reference(p.names)
            where = p.location
            source = p.resource or f"unreadable record at {where}"
            stored: StoredProblem = (p.severity, p.code, p.message, p.element, p.resource)
            self._file_record(
                ref, "unreadable", None, source, None, b"", where.file, where.entry, where.line, None, [stored]
            )

    def add(self, entry: Entry, found: Sequence[Problem] = ()) -> None:
        """Read one entry. `found`: problems already found with it (fhir-ns validate's entry gate); they
        follow the entry's patient like the collector's own, so an error refuses that patient. The usual
        Observation with nothing found is filed at once, as `read` files it."""
        resource, location = entry.resource, entry.location
        raw = entry.raw
        if isinstance(resource, dict):
            rtype = resource["resourceType"]
            if rtype not in READ_TYPES:
                self.counts[rtype] = self.counts.get(rtype, 0) + 1
                self.problems.extend(found)
                return
            raw = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
            resource = shapes.from_dict(resource)
        elif raw is None:
            raw = msgspec.json.encode(resource)
        self.add_shaped(resource, raw, location, entry.full_url, found)

    def add_shaped(
        self, resource: Any, raw: bytes, location: Location, full_url: str | None = None, found: Sequence[Problem] = ()
    ) -> None:
        """`add` of a resource already typed (a `shapes` Struct) with its JSON text `raw` (whose hash tells
        identical copies apart), without an Entry made for it."""
        if (
            not found
            and type(resource) is shapes.Observation
            and self._usual_observation(resource, raw, location.file, location.entry, location.line)
        ):
            return
        self._add(resource, raw, location.file, location.entry, location.line, full_url, found)

    def add_json(self, raw: bytes, location: Location) -> None:
        """Read one resource from its JSON text as `read` reads a file's entries: typed, the usual Observation
        filed at once; text of a type fhir-ns does not read (or that does not decode typed) goes to `add`."""
        try:
            resource = shapes.decode(raw)
        except TYPED_ERRORS:
            self.add(Entry(orjson.loads(raw), location))
            return
        if type(resource) is shapes.Observation and self._usual_observation(
            resource, raw, location.file, location.entry, location.line
        ):
            return
        self._add(resource, raw, location.file, location.entry, location.line, None, ())

    def _add(
        self,
        res: Any,
        raw: bytes,
        name: str,
        entry: int | None,
        line: int | None,
        full_url: str | None,
        found: Sequence[Problem],
    ) -> None:
        rtype = _TYPE_NAMES[type(res)]
        self.counts[rtype] = self.counts.get(rtype, 0) + 1
        rid = res.id if isinstance(res.id, str) else None
        if rtype == "Patient":
            self._add_patient(res, rid, Location(name, entry, line), full_url)
            target = self._patients[rid].problems if rid in self._patients else self.problems
            target.extend(found)
            return
        if rtype == "Medication":
            self.problems.extend(found)
            refused = any(p.severity in ("error", "fatal") for p in found)
            for key in _keys(rtype, rid, full_url):
                self._medications[key] = res.code
                if refused:
                    self._refused_medications.add(key)
            return
        source = f"{rtype}/{rid}" if rid else (full_url or f"{rtype} at {Location(name, entry, line)}")
        problems: list[StoredProblem] = (
            [(p.severity, p.code, p.message, p.element, p.resource) for p in found] if found else []
        )
        ref = NO_PATIENT
        payload: Any = None
        draft = (problems, source if rid else None)
        try:
            subject = res.subject or res.patient
            written = subject.reference if type(subject) is Reference else None
            known = self._references.get(written) if type(written) is str else None
            ref = known if known is not None else self._subject(res, rtype)
            if rtype == "Observation":
                payload = self._observation(res, source, draft)
            elif rtype == "Condition":
                payload = self._condition(res, source, draft)
            elif rtype == "Procedure":
                payload = self._procedure(res, source, draft)
            elif rtype == "AllergyIntolerance":
                payload = self._intolerance(res, source, draft)
            else:
                payload = self._medication_use(rtype, res, source, draft)
        except _Refused as exc:
            problems.append(("error", exc.code, str(exc), exc.element, source))
        self._file_record(ref, rtype, rid, source, res.meta, raw, name, entry, line, payload, problems)

    def _file_record(
        self,
        ref: str,
        rtype: str,
        rid: str | None,
        source: str,
        meta: Any,
        raw: bytes,
        name: str,
        entry: int | None,
        line: int | None,
        payload: Any,
        problems: list[StoredProblem],
    ) -> None:
        """Keep what was read of one resource (the fields of a `Stored`) under its patient reference."""
        number = self._file_numbers.get(name)
        if number is None:
            number = self._file_numbers[name] = len(self.units[-1].files)
            self.units[-1].files.append(name)
        stamp = meta.lastUpdated if type(meta) is Meta else None
        # a fact carries its own source: the record does not repeat it
        own = payload is not None and type(payload) is not Pending
        record = (
            self._seq,
            rtype,
            rid,
            None if own else source,
            stamp if type(stamp) is str else "",
            hash(raw),
            number,
            entry,
            line,
            payload,
            problems,
        )
        self._seq += 1
        self.store.add(ref, record, hash(source) if rid else None)

    def _usual_observation(
        self, obs: shapes.Observation, raw: bytes, name: str, entry: int | None, line: int | None
    ) -> bool:
        """File the usual Observation at once and say True: an id, a subject already seen, a known first
        code, a day, and a quantity in an accepted and plausible unit or a coded dipstick grade. It is the
        record `_add` would file (tests/test_fast_path.py compares them); anything else is left to `_add`
        (False), which also says what is wrong."""
        rid = obs.id
        status = obs.status
        subject = obs.subject
        code = obs.code
        when = obs.effectiveDateTime
        if (
            type(rid) is not str
            or not rid
            or (status is not None and (type(status) is not str or status in OBSERVATION_SKIP))
            or type(subject) is not Reference
            or type(subject.reference) is not str
            or type(code) is not CodeableConcept
            or type(code.coding) is not list
            or not code.coding
            or type(when) is not str
        ):
            return False
        ref = self._references.get(subject.reference)
        coding = code.coding[0]
        day = DAY_CACHE.get(when[:10])
        if ref is None or day is None or type(coding) is not Coding:
            return False
        system, value = coding.system, coding.code
        if type(system) is not str or type(value) is not str:
            return False
        concept_name = self.term.observation_codes.get((system, value))
        if concept_name is None:
            return False
        concept = self.term.concepts[concept_name]
        source = "Observation/" + rid
        if concept.genetic or concept.panel or concept.stated:
            return False
        if concept.ordinal:
            grade = self._coded_grade(obs)
            if grade is None:
                return False
            fact = Measurement(concept_name, day, float(grade), "grade", source)
        else:
            quantity = obs.valueQuantity
            if type(quantity) is not Quantity:
                return False
            number = quantity.value
            if type(number) is not float and type(number) is not int:
                return False
            key = (concept_name, quantity.code, quantity.system, quantity.unit)
            try:
                known = key in self._units
            except TypeError:  # an element that is not a string: _add says what
                return False
            accepted = (
                self._units[key] if known else self._units.setdefault(key, self._accepted_unit(concept, quantity))
            )
            if accepted is None:
                return False
            factor, family, low, high = accepted
            converted = float(number) * factor
            if not low <= converted <= high:
                return False
            fact = Measurement(concept_name, day, converted, family, source)
        counts = self.counts
        counts["Observation"] = counts.get("Observation", 0) + 1
        self._file_record(ref, "Observation", rid, source, obs.meta, raw, name, entry, line, fact, [])
        return True

    def _accepted_unit(self, concept: Concept, quantity: Quantity) -> tuple[float, str, float, float] | None:
        """(factor, family, plausible low, high) of a quantity's unit for a concept, as `_observation`
        reads it; None when it would refuse the unit."""
        rule = concept.unit_rule(_unit(quantity))
        if rule is None:
            return None
        low, high = concept.plausible.get(rule.family) or (-math.inf, math.inf)
        return rule.factor, rule.family, low, high

    def _coded_grade(self, obs: shapes.Observation) -> int | None:
        """The dipstick grade of an answer coded in a known code (its first coding), else None."""
        if type(obs.valueQuantity) is Quantity:
            return None
        answer = obs.valueCodeableConcept
        if type(answer) is not CodeableConcept or type(answer.coding) is not list or not answer.coding:
            return None
        coding = answer.coding[0]
        if type(coding) is not Coding or type(coding.system) is not str or type(coding.code) is not str:
            return None
        return self.term.dipstick_codes.get((coding.system, coding.code))

    def _note(self, draft: _Draft, severity: Severity, code: str, message: str, element: str | None = None) -> None:
        draft[0].append((severity, code, message, element, draft[1]))

    def _add_patient(self, res: shapes.Patient, rid: str | None, location: Location, full_url: str | None) -> None:
        if rid is None:
            self.problems.append(
                Problem("error", "required", "Patient has no id; its resources cannot be matched to it", location, "id")
            )
            return
        info = PatientRecord(location)
        if res.birthDate is not UNSET:
            try:
                info.birth_date, exact = parse_birth_date(res.birthDate)
                if not exact:
                    info.problems.append(
                        Problem(
                            "warning",
                            "value",
                            f"birthDate {res.birthDate} is partial; placed mid-period",
                            location,
                            "birthDate",
                            f"Patient/{rid}",
                        )
                    )
            except DateError as exc:
                info.problems.append(Problem("error", "value", str(exc), location, "birthDate", f"Patient/{rid}"))
        info.own = len(info.problems)
        info.sex = res.gender if res.gender in ("male", "female") else None
        stamp = res.meta.lastUpdated if type(res.meta) is Meta else None
        info.stamp = stamp if type(stamp) is str else ""
        self._settle_patient(rid, info)
        for key in _keys("Patient", rid, full_url):
            self._aliases[key] = rid

    def _settle_patient(self, rid: str, record: PatientRecord) -> None:
        """File a Patient read, or keep one of its two versions: the later meta.lastUpdated, else the first read."""
        first = self._patients.get(rid)
        if first is None:
            self._patients[rid] = record
            return
        keep, drop = (record, first) if record.stamp > first.stamp else (first, record)
        if keep is record:  # the new version takes the place of the first: its own problems, and the notes
            keep.problems = keep.problems[: keep.own] + first.problems[first.own :]  # about the others
            self._patients[rid] = keep
        else:
            keep.problems.extend(record.problems[record.own :])
        words = _versions_words((keep.location, keep.stamp), (drop.location, drop.stamp))
        keep.problems.append(Problem("warning", "duplicate", words, record.location, None, f"Patient/{rid}"))

    def _subject(self, res: Any, rtype: str) -> str:
        element = "patient" if rtype == "DetectedIssue" else "subject"
        ref = res.subject or res.patient
        if not isinstance(ref, Reference) or not isinstance(ref.reference, str):
            raise _Refused(
                "no subject/patient reference; the resource cannot be placed on a patient's timeline",
                element,
                "required",
            )
        normal = self._references.get(ref.reference)
        if normal is None:
            normal = self._references[ref.reference] = _normalise_reference(ref.reference)
        return normal

    # -- per resource type ------------------------------------------------------------------------
    def _observation(self, obs: shapes.Observation, source: str, draft: _Draft) -> Any:
        status = obs.status
        if status is not None and type(status) is str and status in OBSERVATION_SKIP:
            return None
        concept_name = None
        table = self.term.observation_codes
        code = obs.code
        if type(code) is CodeableConcept and type(code.coding) is list:
            for coding in code.coding:
                if type(coding) is Coding:
                    system, value = coding.system, coding.code
                    key = (system, value) if type(system) is str and type(value) is str else _key(coding)
                    concept_name = table.get(key)
                    if concept_name:
                        break
        if concept_name is None:
            return None  # not a concept fhir-ns uses; counted, not reported
        concept = self.term.concepts[concept_name]
        if concept.stated:
            concept_name = _stated_concept(concept, obs.code) or concept_name
            concept = self.term.concepts[concept_name]
        when = obs.effectiveDateTime
        if type(when) is str:  # the usual case, read without the general search of _period
            day = DAY_CACHE.get(when[:10])  # type: ignore[assignment]
            if day is None:
                try:
                    day = parse_day(when)
                except DateError as exc:
                    raise _Refused(str(exc), "effectiveDateTime", "value") from exc
        else:
            day = self._effective_day(obs, ("effectiveDateTime", "effectiveInstant", "effectivePeriod"))
        if concept.genetic:
            return self._genetic(obs, day, source)
        if concept.panel:
            return self._panel(obs, concept, day, source, draft)
        if concept.ordinal:
            grade = self._dipstick_grade(obs)
            return Measurement(concept_name, day, float(grade), "grade", source)
        quantity = obs.valueQuantity
        if type(quantity) is not Quantity:
            if obs.dataAbsentReason is not UNSET or not obs.has_value():
                self._note(draft, "warning", "required", f"{concept.label} without a value; ignored", "value[x]")
                return None
            raise _Refused(f"{concept.label} needs a valueQuantity", "value[x]", "value")
        return self._quantity_measurement(concept_name, concept, quantity, day, source, "valueQuantity")

    def _panel(self, obs: shapes.Observation, panel: Concept, day: date, source: str, draft: _Draft) -> Panel | None:
        """The components of a panel (blood pressure 85354-9) whose codes and units are known, each a measurement."""
        found: list[Measurement] = []
        components = obs.component if isinstance(obs.component, list) else []
        for i, part in enumerate(components):
            if not isinstance(part, Component):
                continue
            name = next(
                (
                    self.term.observation_codes.get(_key(c))
                    for c in _codings(part.code)
                    if _key(c) in self.term.observation_codes
                ),
                None,
            )
            if name is None:
                continue
            concept = self.term.concepts[name]
            quantity = part.valueQuantity
            element = f"component[{i}].valueQuantity"
            if not isinstance(quantity, Quantity):
                self._note(
                    draft, "warning", "required", f"{concept.label} without a value in {panel.label}; ignored", element
                )
                continue
            found.append(self._quantity_measurement(name, concept, quantity, day, source, element))
        if not found:
            self._note(
                draft, "warning", "required", f"{panel.label} without a known component value; ignored", "component"
            )
            return None
        return Panel(tuple(found), source)

    def _quantity_measurement(
        self, name: str, concept: Concept, quantity: Quantity, day: date, source: str, element: str
    ) -> Measurement:
        """A quantity (at `element`: valueQuantity or a component's) in an accepted unit and plausible, as a measurement."""
        value = quantity.value
        if type(value) is not float and type(value) is not int:  # JSON numbers only (not true/false)
            raise _Refused(f"{element}.value is not a number: {value!r}", f"{element}.value", "value")
        unit = _unit(quantity)
        rule = concept.unit_rule(unit)
        if rule is None:
            accepted = ", ".join(concept.units) or "none"
            raise _Refused(
                f"unit {unit!r} is not accepted for {concept.label} (accepted: {accepted})",
                f"{element}.code",
                "code-invalid",
            )
        converted = float(value) * rule.factor
        bounds = concept.plausible.get(rule.family)
        if bounds and not bounds[0] <= converted <= bounds[1]:
            raise _Refused(
                f"{concept.label} {value:g} {unit} is implausible (outside {bounds[0]:g}-{bounds[1]:g} {rule.family})",
                f"{element}.value",
                "value",
            )
        return Measurement(name, day, converted, rule.family, source)

    def _dipstick_grade(self, obs: shapes.Observation) -> int:
        quantity = obs.valueQuantity
        if isinstance(quantity, Quantity) and isinstance(quantity.value, (int, float)):
            unit = _unit(quantity)
            if unit not in ("mg/dL", None):
                raise _Refused(
                    f"dipstick unit {unit!r} is not accepted (accepted: mg/dL)", "valueQuantity.code", "code-invalid"
                )
            return self.term.grade_from_mg_dl(float(quantity.value))
        texts: list[str] = []
        if isinstance(obs.valueString, str):
            texts.append(obs.valueString)
        concept = obs.valueCodeableConcept
        if isinstance(concept, CodeableConcept):
            for coding in _codings(concept):
                grade = self.term.dipstick_codes.get(_key(coding))
                if grade is not None:
                    return grade
                texts.extend(str(value) for value in (coding.code, coding.display) if value)
            if isinstance(concept.text, str):
                texts.append(concept.text)
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

    def _genetic(self, obs: shapes.Observation, day: date, source: str) -> GeneticResult:
        concepts: set[str] = set()
        genes: list[str] = []
        pathogenic = False
        components = obs.component if isinstance(obs.component, list) else []
        parts: list[Any] = [obs, *[c for c in components if isinstance(c, Component)]]
        for part in parts:
            for value in (part.code, part.valueCodeableConcept):
                for coding in _codings(value):
                    gene = self.term.gene_codes.get(_key(coding))
                    if gene:
                        concepts.add(gene[0])
                        genes.append(gene[1])
                    if _key(coding) in self.term.pathogenic_answers:
                        pathogenic = True
            answer = part.valueCodeableConcept
            texts = [answer.text] if isinstance(answer, CodeableConcept) else []
            texts += [c.display for c in _codings(answer)]
            pathogenic = pathogenic or any(_says_pathogenic(t) for t in texts if isinstance(t, str))
            if isinstance(part.valueString, str):
                pathogenic = pathogenic or _says_pathogenic(part.valueString)
        return GeneticResult(frozenset(concepts), tuple(genes), pathogenic, day, source)

    def _condition(self, cond: shapes.Condition, source: str, draft: _Draft) -> ConditionFact | None:
        verification = _first_code(cond.verificationStatus)
        if verification in CONDITION_SKIP_VERIFICATION:
            return None
        concepts: set[str] = set()
        for coding in _codings(cond.code):
            concepts |= self.term.condition_concepts(*_key(coding))
        if not concepts:
            return None
        onset = _onset(cond)
        if onset is None:
            self._note(
                draft,
                "warning",
                "required",
                "condition has no onset or recorded date; taken as present throughout",
                "onset[x]",
            )
        abatement = None
        period = cond.abatementPeriod
        abate = cond.abatementDateTime or (period.get("end") if isinstance(period, dict) else None)
        if abate is not None:
            try:
                abatement = parse_day(abate)
            except DateError as exc:
                raise _Refused(str(exc), "abatement[x]", "value") from exc
        clinical = _first_code(cond.clinicalStatus)
        active = clinical is None or clinical in ACTIVE_CONDITION
        return ConditionFact(frozenset(concepts), onset, abatement, active, source)

    def _procedure(self, proc: shapes.Procedure, source: str, draft: _Draft) -> ProcedureFact | None:
        """A plasma exchange, dialysis or kidney transplant with its dates; other procedures are not read."""
        if _is_in(proc.status, PROCEDURE_SKIP):
            return None
        concept: str | None = None
        for coding in _codings(proc.code):
            concept = self.term.procedure_codes.get(_key(coding))
            if concept:
                break
        by_name = False
        if concept is None:
            texts = [proc.code.text] if isinstance(proc.code, CodeableConcept) else []
            texts += [c.display for c in _codings(proc.code)]
            concept = next((c for t in texts if isinstance(t, str) and (c := self.term.procedure_for_text(t))), None)
            if concept is None:
                return None
            by_name = True
            self._matched_by_name(draft, "procedure", self.term.procedures[concept].display, "code")
        start, end = self._period(
            proc, ("performedDateTime", "performedPeriod", "occurrenceDateTime", "occurrencePeriod")
        )
        if end is None and not _is_in(proc.status, PROCEDURE_ONGOING):
            period = proc.performedPeriod if proc.performedPeriod is not None else proc.occurrencePeriod
            end = None if isinstance(period, dict) else start  # a single date: done that day
        if end is not None and end < start:
            raise _Refused(f"ends ({end}) before it starts ({start})", "performedPeriod", "value")
        return ProcedureFact(concept, start, end, source, by_name)

    def _matched_by_name(self, draft: _Draft, what: str, display: str, element: str) -> None:
        """Information that a record was recognised by its name (text or display), not by a code the mappings know."""
        self._note(
            draft,
            "information",
            "code-unknown",
            f"{what} matched to {display} by its name, not by a known code",
            element,
        )

    def _intolerance(self, allergy: shapes.AllergyIntolerance, source: str, draft: _Draft) -> Intolerance | None:
        """An allergy or intolerance naming a drug fhir-ns knows (a CNI's feeds `cni-intolerant`); others are
        not read."""
        if _first_code(allergy.verificationStatus) in CONDITION_SKIP_VERIFICATION:
            return None
        drug_name, by_name = self._drug(allergy.code)
        if drug_name is None:
            return None
        drug = self.term.drugs[drug_name]
        if by_name:
            self._matched_by_name(draft, "allergy or intolerance", drug.display, "code")
        on = _onset(allergy)
        if on is None:
            self._note(draft, "warning", "required", "allergy or intolerance has no onset or recorded date", "onset[x]")
        clinical = _first_code(allergy.clinicalStatus)
        return Intolerance(drug_name, drug.drug_class, on, clinical is None or clinical == "active", source, by_name)

    def _medication_use(self, rtype: str, res: Any, source: str, draft: _Draft) -> Any:
        status = res.status
        if rtype == "MedicationStatement" and _is_in(status, STATEMENT_SKIP):
            return None
        if rtype == "MedicationRequest" and (
            _is_in(status, self._request_skip) or _is_in(res.intent, REQUEST_INTENT_SKIP)
        ):
            return None
        if rtype == "MedicationAdministration" and _is_in(status, ADMINISTRATION_SKIP):
            return None
        concept, reference = _medication_of(res)
        if concept is None and reference is not None:
            if reference.startswith("#"):
                contained = res.contained if isinstance(res.contained, list) else []
                medication = {c.id: c for c in contained if isinstance(c, Contained)}.get(reference[1:])
                if medication is None:
                    raise _Refused(f"contained medication {reference} not found", "medicationReference", "not-found")
                concept = medication.code
            else:
                return Pending(reference, res)
        return self._exposure(rtype, res, concept, source, draft)

    def _exposure(self, rtype: str, res: Any, concept: Any, source: str, draft: _Draft) -> DrugExposure | Taper | None:
        drug_name, by_name = self._drug(concept)
        if drug_name is None:
            self._unknown_immunosuppressant(concept, draft)
            return None
        drug = self.term.drugs[drug_name]
        if by_name:
            self._matched_by_name(draft, "medication", drug.display, "medication[x]")
        status = res.status
        if rtype == "MedicationAdministration":
            given = [res.dosage] if isinstance(res.dosage, AdministrationDosage) else []
            start, _ = self._period(
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
            daily, basis = self._administered_dose(given)
            return DrugExposure(
                drug_name, drug.drug_class, start, start, daily, basis, source, False, _route(given), True, by_name
            )
        listed = res.dosage if rtype == "MedicationStatement" else res.dosageInstruction
        dosages = [d for d in listed if isinstance(d, Dosage)] if isinstance(listed, list) else []
        phases = _phases(dosages)
        if rtype == "MedicationStatement":
            start, end = self._period(res, ("effectivePeriod", "effectiveDateTime"))
        elif not phases:
            start, end = self._request_period(res, dosages)
        else:
            start, end = self._order_period(res, phases[0])
        made = partial(
            DrugExposure,
            drug_name,
            drug.drug_class,
            source=source,
            matched_by_name=by_name,
            stopped_for_adverse_effect=self._stopped_for_adverse_effect(res.statusReason),
        )
        if phases:
            if end is not None and end < start:
                raise _Refused(f"ends ({end}) before it starts ({start})", "effectivePeriod", "value")
            placed = list(self._taper_phases(phases, start, end, made, draft))
            last = placed[-1] if placed else None
            if last is not None and last.end is None and not _is_in(status, ONGOING_STATUSES):
                self._note(
                    draft,
                    "warning",
                    "incomplete",
                    f"status {status} but its last dosage phase has no end date; that phase counted as one day",
                    "dosage.timing.repeat",
                )
                placed[-1] = msgspec.structs.replace(last, end=last.start)
            return Taper(tuple(placed), source)
        if end is None and not _is_in(status, ONGOING_STATUSES):
            self._note(
                draft,
                "warning",
                "incomplete",
                f"status {status} but no end date; counted as one day",
                "effective[x]",
            )
            end = start
        if end is not None and end < start:
            raise _Refused(f"ends ({end}) before it starts ({start})", "effectivePeriod", "value")
        if phases == []:
            why = "some dosage instructions have a sequence number and others none, so their order cannot be read"
            self._note(
                draft, "warning", "incomplete", f"{why}; dose-based rules cannot use this order", "dosage.sequence"
            )
            return made(start, end, None, "mg", route=_route(dosages), dose_unknown=why)
        daily, basis, alternate, high = self._daily_dose(dosages, draft)
        return made(start, end, daily, basis, alternate_day=alternate, route=_route(dosages), daily_dose_high=high)

    def _stopped_for_adverse_effect(self, reasons: Any) -> bool:
        """Does a status reason (a list in R4 MedicationStatement, one concept elsewhere) say the medication
        was stopped for an adverse effect: a known code, or a known word in its text or a display?"""
        concepts = reasons if isinstance(reasons, list) else [reasons]
        for concept in concepts:
            if not isinstance(concept, CodeableConcept):
                continue
            codings = _codings(concept)
            if any(_key(c) in self.term.adverse_stop_reasons for c in codings):
                return True
            texts = [concept.text, *(c.display for c in codings)]
            for text in texts:
                if isinstance(text, str) and any(w in _norm_text(text) for w in self.term.adverse_stop_words):
                    return True
        return False

    def _taper_phases(
        self,
        phases: list[list[Dosage]],
        start: date,
        end: date | None,
        made: Callable[..., DrugExposure],
        draft: _Draft,
    ) -> Iterator[DrugExposure]:
        """Each phase of a sequenced order as an exposure with its own dates, dose and frequency (RULES §6b).

        A phase starts on its `boundsPeriod.start`, else the day after the previous phase ends; it ends on
        its `boundsPeriod.end`, after its `boundsDuration`, or (the last phase) with the order. A phase
        that cannot be placed makes the rest of the order one exposure whose dose is unknown, saying why.
        """
        cursor = start
        for number, phase in enumerate(phases, 1):
            bounds = _phase_bounds(phase)
            first = self._bound_day(bounds, "start") or cursor
            last = self._bound_day(bounds, "end")
            if last is None and bounds is not None and isinstance(bounds.boundsDuration, Quantity):
                last = (
                    first + _duration(bounds.boundsDuration, "dosage.timing.repeat.boundsDuration") - timedelta(days=1)
                )
            if last is None and number < len(phases):
                why = (
                    f"dosage phase {number} of {len(phases)} (from {first}) has no end (boundsPeriod.end or "
                    f"boundsDuration), so the phases after it cannot be placed in time"
                )
                self._note(
                    draft,
                    "warning",
                    "incomplete",
                    f"{why}; dose-based rules cannot use this order from {first}",
                    "dosage.timing.repeat",
                )
                yield made(first, end, None, "mg", route=_route(phase), dose_unknown=why)
                return
            if last is None or (end is not None and last > end):
                last = end  # the last phase runs with the order; a stopped order cuts its phases short
            if end is not None and first > end:
                return  # the order stopped before this phase began
            if last is not None and last < first:
                raise _Refused(
                    f"dosage phase {number} ends ({last}) before it starts ({first})", "dosage.timing.repeat", "value"
                )
            daily, basis, alternate, high = self._daily_dose(phase, draft)
            yield made(first, last, daily, basis, alternate_day=alternate, route=_route(phase), daily_dose_high=high)
            if last is None:
                return
            cursor = last + timedelta(days=1)

    def _bound_day(self, repeat: Repeat | None, key: str) -> date | None:
        if repeat is None or not isinstance(repeat.boundsPeriod, dict) or repeat.boundsPeriod.get(key) is None:
            return None
        try:
            return parse_day(repeat.boundsPeriod[key])
        except DateError as exc:
            raise _Refused(str(exc), f"dosage.timing.repeat.boundsPeriod.{key}", "value") from exc

    def _order_period(self, req: shapes.MedicationRequest, first_phase: list[Dosage]) -> tuple[date, date | None]:
        """A sequenced order's own period: it starts with its first phase (else its validity or authoring) and
        ends with its validity period or expected supply; its phases give their own dates."""
        dispense = req.dispenseRequest if isinstance(req.dispenseRequest, DispenseRequest) else None
        validity = dispense.validityPeriod if dispense is not None and isinstance(dispense.validityPeriod, dict) else {}
        start = self._bound_day(_phase_bounds(first_phase), "start")
        if start is None:
            start = (
                self._period(dispense, ("validityPeriod",))[0]
                if validity.get("start")
                else self._period(req, ("authoredOn",))[0]
            )
        if validity.get("end") is not None:
            return start, self._period(dispense, ("validityPeriod",))[1]
        supply = dispense.expectedSupplyDuration if dispense is not None else None
        if isinstance(supply, Quantity):
            return start, start + _duration(supply, "dispenseRequest.expectedSupplyDuration") - timedelta(days=1)
        return start, None

    def drug_named(self, text: str) -> str | None:
        """`Terminology.drug_for_text`, remembered with the answers `_drug` looks up (a name is tens of regular
        expressions)."""
        known = self._drugs
        return known[text] if text in known else known.setdefault(text, self.term.drug_for_text(text))

    def drug_coded(self, system: str, code: str) -> str | None:
        """`Terminology.drug_for_code`, remembered as `drug_named`."""
        key = (system, code)
        known = self._drugs
        return known[key] if key in known else known.setdefault(key, self.term.drug_for_code(system, code))

    def _drug(self, concept: Any) -> tuple[str | None, bool]:
        """The drug a medication concept names, and whether by name only. A code wins over a name, except
        where the name is a form dosed as the coded drug (ATC L04AA06 with "mycophenolate sodium")."""
        known = self._drugs  # the answers for codes and names already looked up
        coded: str | None = None
        for coding in _codings(concept):
            system, code = coding.system, coding.code
            if isinstance(system, str) and isinstance(code, str):
                key = (system, code)
                drug = known[key] if key in known else known.setdefault(key, self.term.drug_for_code(system, code))
                if drug:
                    coded = drug
                    break
        texts = [concept.text] if isinstance(concept, CodeableConcept) else []
        texts += [c.display for c in _codings(concept)]
        for text in texts:
            if isinstance(text, str):
                drug = known[text] if text in known else known.setdefault(text, self.term.drug_for_text(text))
                if drug and coded is None:
                    return drug, True
                dosed_as = self.term.drugs[drug].dosed_as if drug else None
                if coded is not None and dosed_as is not None and dosed_as[0] == coded:
                    return drug, False
        return coded, False

    def _unknown_immunosuppressant(self, concept: Any, draft: _Draft) -> None:
        """Warn of a medication coded in a watched ATC group (L01, L04, H02) that maps to no known drug."""
        for coding in _codings(concept):
            system, code = coding.system, coding.code
            if not (isinstance(system, str) and isinstance(code, str)):
                continue
            group = self.term.unknown_atc_group(system, code)
            if group is None:
                continue
            name = coding.display if isinstance(coding.display, str) else None
            if name is None and isinstance(concept, CodeableConcept) and isinstance(concept.text, str):
                name = concept.text
            self._note(
                draft,
                "warning",
                "code-unknown",
                f"medication {name + ' ' if name else ''}(ATC {code}, group {group}) is not a drug fhir-ns knows; "
                "it is not used by any rule (a site can add it in its mapping directory's drugs.yaml)",
                "medication[x]",
            )
            return

    def _effective_day(self, res: Any, keys: tuple[str, ...]) -> date:
        start, _ = self._period(res, keys)
        return start

    def _period(self, res: Any, keys: tuple[str, ...]) -> tuple[date, date | None]:
        for key in keys:
            value = getattr(res, key)
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

    def _request_period(self, req: shapes.MedicationRequest, dosages: list[Dosage]) -> tuple[date, date | None]:
        repeats = [r for r in (_repeat(d) for d in dosages) if r is not None]
        for repeat in repeats:
            if isinstance(repeat.boundsPeriod, dict):
                return self._period(repeat, ("boundsPeriod",))
        dispense = req.dispenseRequest if isinstance(req.dispenseRequest, DispenseRequest) else None
        if dispense is not None and isinstance(dispense.validityPeriod, dict) and dispense.validityPeriod.get("start"):
            return self._period(dispense, ("validityPeriod",))
        start, _ = self._period(req, ("authoredOn",))
        for repeat in repeats:
            if isinstance(repeat.boundsDuration, Quantity):
                return start, start + _duration(repeat.boundsDuration, "boundsDuration") - timedelta(days=1)
        supply = dispense.expectedSupplyDuration if dispense is not None else None
        if isinstance(supply, Quantity):
            return start, start + _duration(supply, "dispenseRequest.expectedSupplyDuration") - timedelta(days=1)
        return start, None

    def _daily_dose(self, dosages: list[Dosage], draft: _Draft) -> tuple[float | None, str, bool, float | None]:
        """(daily dose, its basis, alternate-day?, the high end when a dose is a range) of concurrent dosages."""
        low = high = 0.0
        basis: str | None = None
        alternate = ranged = False
        for dosage in dosages:
            amount = _dose_amount(dosage.doseAndRate)
            if amount is None:
                continue
            least, most, unit = amount
            per_day = _administrations_per_day(dosage.timing)
            if per_day is None:
                self._note(draft, "warning", "incomplete", "dosage has no timing; taken as once a day", "dosage.timing")
                per_day = 1.0
            if basis is not None and basis != unit:
                raise _Refused(f"dosages mix {basis} and {unit}", "dosage.doseAndRate", "value")
            basis = unit
            low += least * per_day
            high += most * per_day
            ranged = ranged or most != least
            alternate = alternate or abs(per_day - 0.5) < 1e-9
        if basis is None:
            if dosages:
                self._note(draft, "warning", "incomplete", "no dose quantity; dose-based rules cannot use it", "dosage")
            return None, "mg", False, None
        return low, basis, alternate, high if ranged else None

    def _administered_dose(self, dosages: list[AdministrationDosage]) -> tuple[float | None, str]:
        for dosage in dosages:
            if isinstance(dosage.dose, Quantity):
                amount = _quantity_mg(dosage.dose, "dosage.dose")
                if amount:
                    return amount[0], amount[1]
        return None, "mg"

    # -- grouping --------------------------------------------------------------------------------
    def patients(self) -> list[PatientInput]:
        """Each patient's facts, with Medication references resolved and duplicates settled."""
        return list(self.each_patient())

    def each_patient(self, counted: Callable[[int], None] | None = None) -> Iterator[PatientInput]:
        """Each patient's facts in order of patient id, assembled one at a time from the store; `counted` is
        told how many patients there are before the first."""
        cohort = self.prepare()
        if counted is not None:
            counted(len(cohort.patients))
        try:
            for pid, refs in cohort.patients:
                patient = self.assemble(pid, refs, cohort.settled)
                if patient is not None:
                    yield patient
        finally:
            self.store.close()

    def prepare(self) -> Cohort:
        """Once everything is read: settle duplicates, report the records without a patient, and list the
        patients to assemble."""
        self.store.seal()  # (before settling: what went to disk is then found by reference, not by a scan)
        settled = self._settle_duplicates()
        by_patient: dict[str, list[str]] = {}
        for ref in self.store.refs():
            if ref != NO_PATIENT:
                by_patient.setdefault(self._aliases.get(ref) or _id_of(ref), []).append(ref)
        unattributed = [(record, NO_PATIENT) for record in self.store.records(NO_PATIENT)]
        for record, _ in self._ordered(unattributed, settled, False):
            record.problems.extend(settled.notes.get(record.seq, ()))
            # a record refused with no patient to refuse is lost to whichever patient it was about
            self.problems.extend(
                replace(p, lost=True) if p.severity in ("error", "fatal") else p for p in self._problems(record, None)
            )
        self._lost = {}
        for p in self.problems:
            if p.lost:
                self._lost.setdefault(self._input(p.location.file), []).append(p)
        pids = sorted(by_patient.keys() | self._patients.keys())
        return Cohort([(pid, by_patient.get(pid, [])) for pid in pids], settled)

    # -- units of input read apart (--jobs) ----------------------------------------------------------
    def begin_unit(self, unit: int) -> None:
        """Number what follows as unit `unit` (a worker reading one piece of the input)."""
        self._seq = unit << _UNIT_SHIFT
        self.units = [UnitMap() for _ in range(unit + 1)]
        self._file_numbers = {}

    def export(self, unit: int, lines: int) -> Part:
        """Everything read, as a Part to merge into another collector; this one is left empty."""
        return Part(
            unit,
            lines,
            self.units[unit].files,
            self.counts,
            self.problems,
            self._patients,
            self._aliases,
            self._medications,
            self._refused_medications,
            self.store.export(),
        )

    def absorb(self, part: Part, line_offset: int) -> None:
        """Merge a Part read elsewhere, as if it had been read here next (parts in reading order)."""
        while len(self.units) <= part.unit:
            self.units.append(UnitMap())
        self.units[part.unit] = UnitMap(part.files, line_offset)
        for rtype, count in part.counts.items():
            self.counts[rtype] = self.counts.get(rtype, 0) + count
        self.problems.extend(_shifted(p, line_offset) for p in part.problems)
        for rid, record in part.patients.items():
            record.location = _shifted_location(record.location, line_offset)
            record.problems = [_shifted(p, line_offset) for p in record.problems]
            self._settle_patient(rid, record)
        self._aliases.update(part.aliases)
        self._medications.update(part.medications)
        self._refused_medications |= part.refused_medications
        self.store.load(part.records)

    def assemble(self, pid: str, refs: list[str], settled: _Settled) -> PatientInput | None:
        """One patient's facts and problems, from the records filed under `refs`."""
        info = self._patients.get(pid)
        notes = settled.notes
        if len(refs) == 1 and refs[0] not in self.store.unkeyed and refs[0] not in settled.refs:
            ref = refs[0]  # the usual patient: records in the order read, no duplicate among them
            records = self.store.records(ref)
            plain = [r.payload for r in records if type(r.payload) is Measurement and not r.problems]
            ordered = [(r, ref) for r in records if type(r.payload) is not Measurement or r.problems]
            first = (records[0], ref) if records else None
        else:
            pairs = [(record, ref) for ref in refs for record in self.store.records(ref)]
            ordered = self._ordered(pairs, settled, len(refs) > 1)
            plain = []
            first = ordered[0] if ordered else None
            records = [record for record, _ in pairs]
        if info is not None:
            facts = PatientFacts(patient_id=pid, reference=f"Patient/{pid}", birth_date=info.birth_date, sex=info.sex)
            patient = PatientInput(facts, list(info.problems))
        elif first is not None:
            record, ref = first
            facts = PatientFacts(patient_id=pid, reference=ref, on_record=False)
            where = self.location(record)
            problem = f"no Patient resource for {ref} in the input; age and sex unknown"
            patient = PatientInput(facts, [Problem("warning", "not-found", problem, where, "subject", None, pid)])
        else:  # every record of this reference was a duplicate kept under another patient
            return None
        measurements = facts.measurements
        measurements.extend(plain)
        for record, _ in ordered:
            payload = record.payload
            if notes and record.seq in notes:
                record.problems.extend(notes[record.seq])
            elif type(payload) is Measurement and not record.problems:
                measurements.append(payload)
                continue
            if payload is None:
                if record.problems:
                    patient.problems.extend(self._problems(record, pid))
                continue
            fact = self._resolve(record, payload, record.reference) if isinstance(payload, Pending) else payload
            if record.problems:
                patient.problems.extend(self._problems(record, pid))
            if fact is not None:
                _file(facts, fact)
        facts.sources.update([m.source for m in measurements])
        facts.sort()  # the order filed does not matter: facts sort on a total key
        if self._lost:
            self._incomplete(patient, records, info)
        return patient

    def _input(self, name: str) -> str:
        """The INPUT argument a file (or a Bundle nested in one: "f.json entry[3]") was read from."""
        return self.inputs.get(name) or self.inputs.get(name.split(" entry[")[0], name)

    def _incomplete(self, patient: PatientInput, records: list[Stored], info: PatientRecord | None) -> None:
        """Refuse a patient whose input files hold unreadable records that may be theirs (or, skipping
        them, count them on the patient)."""
        files = {self.units[r.seq >> _UNIT_SHIFT].files[r.file] for r in records}
        if info is not None:
            files.add(info.location.file)
        lost = [p for name in sorted({self._input(f) for f in files}) for p in self._lost.get(name, ())]
        if not lost:
            return
        if self.skip_unreadable:
            patient.unreadable = len(lost)
            return
        where = ", ".join(sorted({p.location.file for p in lost}))
        patient.problems.append(
            Problem(
                "error",
                "incomplete",
                f"not evaluated: {len(lost)} unreadable record(s) in {where} may hold this patient's data "
                f"(first: {lost[0].location}: {lost[0].message}); --skip-unreadable evaluates such patients "
                "anyway and marks their results",
                lost[0].location,
                patient=patient.facts.patient_id,
            )
        )

    def _ordered(self, records: list[tuple[Stored, str]], settled: _Settled, mixed: bool) -> list[tuple[Stored, str]]:
        """The records in the order the collector first read them: resources with an id (a later
        version in the place of the first), then those without; settled duplicates dropped."""
        moved, dropped = settled.moved, settled.dropped
        if dropped:
            records = [pair for pair in records if pair[0].seq not in dropped]
        if mixed or any(record.rid is None or record.seq in moved for record, _ in records):
            records.sort(key=lambda pair: (pair[0].rid is None, moved.get(pair[0].seq, pair[0].seq)))
        return records

    def _problems(self, record: Stored, pid: str | None) -> list[Problem]:
        if not record.problems:
            return []
        location = self.location(record)
        return [
            Problem(severity, code, message, location, element, resource, pid)  # type: ignore[arg-type]
            for severity, code, message, element, resource in record.problems
        ]

    def location(self, record: Stored) -> Location:
        """Where a record's resource was read."""
        unit = self.units[record.seq >> _UNIT_SHIFT]
        line = None if record.line is None else record.line + unit.line_offset
        return Location(unit.files[record.file], record.entry, line)

    def _settle_duplicates(self) -> _Settled:
        """Decide, for each resource read more than once, which version is kept and what is said about it."""
        settled = _Settled()
        hashes, refs = self.store.contested()
        if not hashes:
            return settled
        settled.refs = refs
        versions: dict[tuple[str, str], list[Stored]] = {}
        for ref in refs:
            for record in self.store.records(ref):
                if record.keyed and hash(record.reference) in hashes:
                    versions.setdefault((record.rtype, record.reference), []).append(record)
        for found in versions.values():
            if len(found) < 2:
                continue  # two sources with the same hash, not two versions
            found.sort(key=lambda r: r.seq)
            kept, notes = found[0], []
            for other in found[1:]:
                if other.digest == kept.digest and other.stamp == kept.stamp:
                    notes.append(
                        _duplicate_note(kept, "information", f"identical copy at {self.location(other)} ignored")
                    )
                    continue
                keep, drop = (other, kept) if other.stamp > kept.stamp else (kept, other)
                if keep is not kept:
                    notes = []  # said of the version now dropped
                kept = keep
                notes.append(_duplicate_note(kept, "warning", self._kept_words(keep, drop)))
            settled.dropped.update(r.seq for r in found if r is not kept)
            settled.moved[kept.seq] = found[0].seq
            settled.notes[kept.seq] = notes
        return settled

    def _kept_words(self, keep: Stored, drop: Stored) -> str:
        """Which of two versions of a resource was kept and why, with both meta.lastUpdated values."""
        return _versions_words((self.location(keep), keep.stamp), (self.location(drop), drop.stamp))

    def _resolve(self, record: Stored, pending: Pending, source: str) -> DrugExposure | Taper | None:
        draft: _Draft = (record.problems, f"{record.rtype}/{record.rid}" if record.rid else None)
        if pending.medication_ref in self._refused_medications:
            draft[0].append(
                (
                    "error",
                    "invalid",
                    f"{pending.medication_ref} was refused (see its own errors); this drug exposure cannot be used",
                    "medicationReference",
                    source,
                )
            )
            return None
        if pending.medication_ref not in self._medications:
            self._note(
                draft,
                "warning",
                "not-found",
                f"{pending.medication_ref} is not in the input; this drug exposure is ignored",
                "medicationReference",
            )
            return None
        try:
            return self._exposure(
                record.rtype, pending.resource, self._medications[pending.medication_ref], source, draft
            )
        except _Refused as exc:
            draft[0].append(("error", exc.code, str(exc), exc.element, source))
            return None


@dataclass(slots=True)
class _Settled:
    """Duplicates settled: versions dropped, the kept one moved to the first one's place, notes on it."""

    dropped: set[int] = field(default_factory=set)
    moved: dict[int, int] = field(default_factory=dict)
    notes: dict[int, list[StoredProblem]] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)  # the references holding any of these


def _shifted_location(location: Location, offset: int) -> Location:
    if not offset or location.line is None:
        return location
    return Location(location.file, location.entry, location.line + offset)


def _shifted(problem: Problem, offset: int) -> Problem:
    """A problem found in a piece of a file, numbered from the start of the file."""
    if not offset or problem.location.line is None:
        return problem
    return replace(problem, location=_shifted_location(problem.location, offset))


def _versions_words(keep: tuple[Location, str], drop: tuple[Location, str]) -> str:
    """ "two versions: kept the one at A (meta.lastUpdated X), ignored the one at B (meta.lastUpdated Y): why"."""
    if keep[1] != drop[1]:
        why = "its meta.lastUpdated is the later"
    elif keep[1]:
        why = "both have the same meta.lastUpdated, so the one read first"
    else:
        why = "neither has meta.lastUpdated, so the one read first"
    return (
        f"two versions: kept the one at {keep[0]} (meta.lastUpdated {keep[1] or 'absent'}), "
        f"ignored the one at {drop[0]} (meta.lastUpdated {drop[1] or 'absent'}): {why}"
    )


def _duplicate_note(record: Stored, severity: str, message: str) -> StoredProblem:
    return (severity, "duplicate", message, None, f"{record.rtype}/{record.rid}")


def _file(
    facts: PatientFacts,
    payload: Measurement | DrugExposure | Taper | ConditionFact | GeneticResult | Panel | ProcedureFact | Intolerance,
) -> None:
    """File a fact in its list; the sources of measurements are gathered once all are filed."""
    if type(payload) is Measurement:
        facts.measurements.append(payload)
        return
    if type(payload) is Panel:
        facts.measurements.extend(payload.measurements)
        return
    facts.sources.add(payload.source)
    if isinstance(payload, DrugExposure):
        facts.exposures.append(payload)
    elif isinstance(payload, Taper):
        facts.exposures.extend(payload.phases)
    elif isinstance(payload, ConditionFact):
        facts.conditions.append(payload)
    elif isinstance(payload, GeneticResult):
        facts.genetics.append(payload)
    elif isinstance(payload, ProcedureFact):
        facts.procedures.append(payload)
    elif isinstance(payload, Intolerance):
        facts.intolerances.append(payload)


def _onset(resource: shapes.Condition | shapes.AllergyIntolerance) -> date | None:
    """The day a Condition or AllergyIntolerance began: its onset (a date, or a period's start), else the day
    it was recorded; None when it gives neither."""
    for key, element in (
        ("onsetDateTime", "onsetDateTime"),
        ("onsetPeriod", "onsetPeriod.start"),
        ("recordedDate", "recordedDate"),
    ):
        value = getattr(resource, key)
        if isinstance(value, dict):
            value = value.get("start")
        if value is not None:
            try:
                return parse_day(value)
            except DateError as exc:
                raise _Refused(str(exc), element, "value") from exc
    return None


def _stated_concept(concept: Concept, code: Any) -> str | None:
    """The concept a word of the code's text or displays names ("fasting" glucose), else None."""
    texts = [code.text] if isinstance(code, CodeableConcept) else []
    texts += [c.display for c in _codings(code)]
    words = set(re.findall(r"[a-z]+", " ".join(t for t in texts if isinstance(t, str)).lower()))
    return next((other for word, other in concept.stated.items() if word in words), None)


# -- small readers of FHIR datatypes -------------------------------------------------------------
def _norm_text(text: str) -> str:
    """Text as the terminology's word lists are written: lower case, no spaces."""
    return "".join(text.lower().split())


def _is_in(value: Any, values: set[str]) -> bool:
    return isinstance(value, str) and value in values


def _codings(concept: Any) -> list[Coding]:
    if not isinstance(concept, CodeableConcept) or not isinstance(concept.coding, list):
        return []
    return [c for c in concept.coding if isinstance(c, Coding)]


def _key(coding: Coding) -> tuple[str, str]:
    """(system, code) of a Coding, for the code tables."""
    system, code = coding.system, coding.code
    return (
        system if type(system) is str else str(system or ""),
        code if type(code) is str else str(code or ""),
    )


def _first_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        if isinstance(coding.code, str):
            return coding.code
    return None


def _unit(quantity: Quantity) -> str | None:
    code, system = quantity.code, quantity.system
    if isinstance(code, str) and (system is None or system == UCUM):
        return code
    unit = quantity.unit
    return unit if isinstance(unit, str) else (code if isinstance(code, str) else None)


def _quantity_mg(quantity: Quantity, element: str) -> tuple[float, str]:
    value = quantity.value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Refused(f"dose is not a number: {value!r}", element, "value")
    unit = _unit(quantity)
    rule = DOSE_UNITS.get(unit or "")
    if rule is None:
        raise _Refused(
            f"dose unit {unit!r} is not understood (accepted: {', '.join(DOSE_UNITS)})", element, "code-invalid"
        )
    return float(value) * rule[1], rule[0]


def _dose_amount(dose_and_rate: Any) -> tuple[float, float, str] | None:
    """(low, high, basis) of one administration: equal ends for a quantity, both ends of a range."""
    if not isinstance(dose_and_rate, list):
        return None
    for item in dose_and_rate:
        if not isinstance(item, DoseAndRate):
            continue
        if isinstance(item.doseQuantity, Quantity):
            value, unit = _quantity_mg(item.doseQuantity, "dosage.doseAndRate.doseQuantity")
            return value, value, unit
        dose_range = item.doseRange
        if (
            isinstance(dose_range, Range)
            and isinstance(dose_range.low, Quantity)
            and isinstance(dose_range.high, Quantity)
        ):
            low = _quantity_mg(dose_range.low, "dosage.doseAndRate.doseRange.low")
            high = _quantity_mg(dose_range.high, "dosage.doseAndRate.doseRange.high")
            if low[1] != high[1]:
                raise _Refused(f"dose range mixes {low[1]} and {high[1]}", "dosage.doseAndRate.doseRange", "value")
            if high[0] < low[0]:
                raise _Refused("dose range's high end is below its low end", "dosage.doseAndRate.doseRange", "value")
            return low[0], high[0], low[1]
    return None


def _phases(dosages: list[Dosage]) -> list[list[Dosage]] | None:
    """Dosages grouped into sequenced phases (same `sequence`: concurrent), in order; None when the
    order has one phase (no sequence numbers, or all the same); [] when the order cannot be read."""
    numbers = {d.sequence for d in dosages}
    if len(numbers) < 2:
        return None
    if any(type(n) is not int for n in numbers):
        return []  # some have a sequence number and others none (or not a number): the order cannot be read
    return [[d for d in dosages if d.sequence == n] for n in sorted(numbers)]


def _phase_bounds(phase: list[Dosage]) -> Repeat | None:
    """The timing of a phase that carries its bounds (the first of its concurrent dosages that has any)."""
    repeats = [r for r in (_repeat(d) for d in phase) if r is not None]
    for repeat in repeats:
        if isinstance(repeat.boundsPeriod, dict) or isinstance(repeat.boundsDuration, Quantity):
            return repeat
    return repeats[0] if repeats else None


def _repeat(dosage: Dosage) -> Repeat | None:
    timing = dosage.timing
    return timing.repeat if isinstance(timing, Timing) and isinstance(timing.repeat, Repeat) else None


def _administrations_per_day(timing: Any) -> float | None:
    if not isinstance(timing, Timing):
        return None
    repeat = timing.repeat if isinstance(timing.repeat, Repeat) else None
    if repeat is not None and (repeat.frequency is not UNSET or repeat.period is not UNSET):
        frequency = float(repeat.frequencyMax or repeat.frequency or 1)
        period = float(repeat.period or 1)
        unit = repeat.periodUnit or "d"
        days = period * (PERIOD_DAYS.get(unit, 1.0) if isinstance(unit, str) else 1.0)
        return frequency / days if days > 0 else None
    code = _first_code(timing.code)
    if code in TIMING_CODES:
        return TIMING_CODES[code]
    if repeat is not None and repeat.when:
        return float(len(repeat.when))
    return None


def _duration(duration: Quantity, element: str) -> timedelta:
    value = duration.value
    unit = duration.code or duration.unit or "d"
    if not isinstance(value, (int, float)) or not isinstance(unit, str) or unit not in PERIOD_DAYS:
        raise _Refused(f"duration {value!r} {unit!r} is not understood", element, "value")
    return timedelta(days=round(float(value) * PERIOD_DAYS[unit]))


def _route(dosages: Sequence[Dosage | AdministrationDosage]) -> str | None:
    for dosage in dosages:
        route = dosage.route
        if not isinstance(route, CodeableConcept):
            continue
        texts = [str(route.text or "")] + [str(c.display or c.code or "") for c in _codings(route)]
        joined = " ".join(texts).lower()
        if "intraven" in joined or joined.split() and joined.split()[0] == "iv":
            return "iv"
        if "oral" in joined or "mouth" in joined or "po" in joined.split():
            return "oral"
        return joined.strip() or None
    return None


def _medication_of(res: Any) -> tuple[Any, str | None]:
    """(CodeableConcept, reference) from R4 medication[x] or R5 medication (CodeableReference)."""
    if isinstance(res.medicationCodeableConcept, CodeableConcept):
        return res.medicationCodeableConcept, None
    ref = res.medicationReference
    if isinstance(ref, Reference) and isinstance(ref.reference, str):
        return None, _normalise_reference(ref.reference)
    r5 = res.medication
    if isinstance(r5, CodeableReference):
        if isinstance(r5.concept, CodeableConcept):
            return r5.concept, None
        inner = r5.reference
        if isinstance(inner, Reference) and isinstance(inner.reference, str):
            return None, _normalise_reference(inner.reference)
    raise _Refused("no medication (medicationCodeableConcept or medicationReference)", "medication[x]", "required")


def _says_pathogenic(text: str) -> bool:
    lowered = text.lower()
    if "pathogenic" not in lowered:
        return False
    return not any(
        word in lowered for word in ("benign", "uncertain", "not pathogenic", "non-pathogenic", "nonpathogenic")
    )


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
