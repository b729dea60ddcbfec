"""The episode model's input facts: small typed values in canonical units, no FHIR.

Every fact keeps `source`, the reference of the resource it came from ("Observation/123"), so any
conclusion drawn from it can cite its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from operator import attrgetter

from msgspec import Struct


class Fact(Struct, frozen=True, array_like=True, gc=False):
    """A fact read from the input: immutable, compact, and stored or sent between processes as msgpack."""


class Measurement(Fact, frozen=True, array_like=True, gc=False, tag="M"):
    """One measured value, converted to the canonical unit of its unit family.

    `concept` names what was measured (see mappings/concepts.yaml); for a dipstick `value` is the
    grade's index in mappings/dipstick.yaml and `unit` is "grade".
    """

    concept: str
    on: date
    value: float
    unit: str
    source: str


class Panel(Fact, frozen=True, array_like=True, gc=False, tag="V"):
    """The measured components of one panel Observation (a blood pressure's systolic and diastolic)."""

    measurements: tuple[Measurement, ...]
    source: str


class DrugExposure(Fact, frozen=True, array_like=True, gc=False, tag="D"):
    """A period on a drug, with its mean daily dose.

    `daily_dose` is per day in `dose_basis` ("mg", "mg/kg" or "mg/m2"); alternate-day regimens keep
    the per-administration dose halved here and `alternate_day` set. `end` is the last day taken,
    inclusive; None means still taking it at the evaluation date. `single_administration` marks one
    dose on one day (a pulse or an infusion). One phase of a taper order is one exposure (its own
    dates, dose and frequency; the order's `source`). A dose written as a range keeps its low end in
    `daily_dose` and its high end in `daily_dose_high` (never a midpoint). `dose_unknown` says why
    the dose cannot be used when the record has one that cannot be placed (a phase without dates).
    """

    drug: str
    drug_class: str
    start: date
    end: date | None
    daily_dose: float | None
    dose_basis: str
    source: str
    alternate_day: bool = False
    route: str | None = None
    single_administration: bool = False
    matched_by_name: bool = False
    daily_dose_high: float | None = None
    dose_unknown: str | None = None
    stopped_for_adverse_effect: bool = False  # its status reason says it was stopped for an adverse effect

    @property
    def dose_range(self) -> bool:
        """Was the dose written as a range (low and high end)?"""
        return self.daily_dose_high is not None and self.daily_dose_high != self.daily_dose

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


class Taper(Fact, frozen=True, array_like=True, gc=False, tag="T"):
    """A medication order or statement given in sequenced phases: one exposure per phase, in order."""

    phases: tuple[DrugExposure, ...]
    source: str


class ConditionFact(Fact, frozen=True, array_like=True, gc=False, tag="C"):
    """A diagnosis mapped to concepts (nephrotic-syndrome, histology-fsgs, peptic-ulcer...)."""

    concepts: frozenset[str]
    onset: date | None
    abatement: date | None
    active: bool
    source: str

    def active_on(self, day: date) -> bool:
        if self.onset is not None and day < self.onset:
            return False
        if self.abatement is not None:
            return day < self.abatement
        return self.active


class Intolerance(Fact, frozen=True, array_like=True, gc=False, tag="A"):
    """An allergy or intolerance record (AllergyIntolerance) naming a drug fhir-ns knows.

    `on` is its onset, else the day it was recorded (None: undated); `active` is False once its clinical
    status says inactive or resolved.
    """

    drug: str
    drug_class: str
    on: date | None
    active: bool
    source: str
    matched_by_name: bool = False


class GeneticResult(Fact, frozen=True, array_like=True, gc=False, tag="G"):
    """A variant assessment: the genes' concepts named in it, and whether it was called pathogenic."""

    gene_concepts: frozenset[str]
    genes: tuple[str, ...]
    pathogenic: bool
    on: date
    source: str


class ProcedureFact(Fact, frozen=True, array_like=True, gc=False, tag="R"):
    """A procedure mapped to a concept (plasma-exchange, dialysis, kidney-transplant), with its dates.

    `end` is the last day, inclusive; None means still going on (a dialysis programme in progress).
    """

    concept: str
    start: date
    end: date | None
    source: str
    matched_by_name: bool = False

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(slots=True)
class PatientFacts:
    """Everything read about one patient, before any clinical interpretation."""

    patient_id: str
    reference: str
    birth_date: date | None = None
    sex: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    exposures: list[DrugExposure] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    genetics: list[GeneticResult] = field(default_factory=list)
    procedures: list[ProcedureFact] = field(default_factory=list)
    intolerances: list[Intolerance] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    on_record: bool = True  # a Patient resource was read (False: only the subject of other resources)

    def sort(self) -> None:
        self.measurements.sort(key=_MEASUREMENT_ORDER)
        self.exposures.sort(key=_EXPOSURE_ORDER)
        self.procedures.sort(key=_PROCEDURE_ORDER)


_MEASUREMENT_ORDER = attrgetter("on", "concept", "source")
_EXPOSURE_ORDER = attrgetter("start", "drug", "source")
_PROCEDURE_ORDER = attrgetter("start", "concept", "source")
