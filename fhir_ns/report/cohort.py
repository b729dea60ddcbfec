"""What a cohort report keeps of each patient as the patients are evaluated one by one: a few small rows,
never the results themselves (the patient- and measure-level tables go straight to CSV files)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

from fhir_ns.rules.result import Measure, PatientResult

DAYS_PER_YEAR = 365.25
# the steroid-response group a patient is counted in, the first that applies (seed 004 reports SDNS and SRNS apart)
GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("SRNS", frozenset({"srns-initial", "srns-secondary"})),
    ("SDNS", frozenset({"sdns"})),
    ("FRNS", frozenset({"frns"})),
)
OTHER_GROUP = "other"
PATIENT_COLUMNS = ("patient", "evaluation", "ruleset", "as_of", "category", "since", "revisit_on")
MEASURE_COLUMNS = (
    "patient", "evaluation", "ruleset", "as_of", "code", "start", "end", "therapy", "value", "number", "unit",
    "censored", "evidence", "reason",
)  # fmt: skip


def therapy_key(text: str) -> frozenset[str]:
    """A regimen as the set of its drugs: "mizoribine + Tacrolimus" and "tacrolimus+mizoribine" are one."""
    return frozenset(part.strip().lower() for part in text.split("+") if part.strip())


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One way of evaluating every patient: a named rule set, or (None) each patient's default by age at onset."""

    ruleset_id: str | None

    @property
    def label(self) -> str:
        return self.ruleset_id or "default by age at onset"


@dataclass(frozen=True, slots=True)
class TherapyRow:
    """One patient given the named therapy, under one evaluation: what the therapy table is computed from."""

    patient: str
    regimen: str  # as the measures name it ("tacrolimus+mizoribine")
    group: str
    start: date
    as_of: date
    age_at_start: float | None  # years (None: no birth date)
    rate_before: float | None  # relapses a year in the period before the therapy
    rate_during: float | None
    dose_before: float | None  # minimum maintenance prednisolone, mg/kg on alternate days
    dose_during: float | None
    before: str | None  # the regimen of the period before ("" for no steroid-sparing therapy)
    state: str | None  # at the evaluation date: complete-remission | partial-remission | no-remission | kidney-failure
    first_relapse_days: float | None
    first_relapse_censored: bool | None

    @property
    def follow_up_months(self) -> float:
        """From the therapy's start to the evaluation date."""
        return (self.as_of - self.start).days / (DAYS_PER_YEAR / 12)


def group_of(codes: set[str]) -> str:
    return next((name for name, members in GROUPS if codes & members), OTHER_GROUP)


def _number(measure: Measure | None) -> float | None:
    if measure is None or measure.value is None or isinstance(measure.value, str):
        return None
    return float(measure.value)


def therapy_row(result: PatientResult, birth_date: date | None, wanted: frozenset[str]) -> TherapyRow | None:
    """The patient's first period on the `wanted` regimen and the period before it, from the measures;
    None when the patient was not given it by the evaluation date."""
    measures = result.measures
    on = [m for m in measures if m.therapy and therapy_key(m.therapy) == wanted]
    if not on:
        return None
    start = min(m.start for m in on)

    def during(code: str) -> Measure | None:
        return next((m for m in on if m.code == code and m.start == start), None)

    def before(code: str) -> Measure | None:
        earlier = [m for m in measures if m.code == code and m.start < start]
        return max(earlier, key=lambda m: (m.start, m.end), default=None)

    states = sorted((m for m in measures if m.code == "state-at-evaluation"), key=lambda m: m.end)
    relapse = during("time-to-first-relapse")
    previous = before("relapse-rate") or before("minimum-maintenance-prednisolone")
    codes = {c.code for c in result.classifications}
    return TherapyRow(
        result.patient_id,
        str(on[0].therapy),
        group_of(codes),
        start,
        result.as_of,
        None if birth_date is None else (start - birth_date).days / DAYS_PER_YEAR,
        _number(before("relapse-rate")),
        _number(during("relapse-rate")),
        _number(before("minimum-maintenance-prednisolone")),
        _number(during("minimum-maintenance-prednisolone")),
        None if previous is None else (previous.therapy or ""),
        str(states[-1].value) if states else None,
        _number(relapse),
        None if relapse is None else relapse.censored,
    )


@dataclass(slots=True)
class Tally:
    """One evaluation's counts over the cohort."""

    evaluated: int = 0
    categories: Counter[str] = field(default_factory=Counter)  # patients who met each category
    rulesets: Counter[str] = field(default_factory=Counter)  # patients per rule set applied ("" = none could be)
    first_as_of: date | None = None
    last_as_of: date | None = None
    therapy: list[TherapyRow] = field(default_factory=list)

    def dated(self, as_of: date) -> None:
        self.first_as_of = as_of if self.first_as_of is None else min(self.first_as_of, as_of)
        self.last_as_of = as_of if self.last_as_of is None else max(self.last_as_of, as_of)


class Cohort:
    """Gathers a report's figures patient by patient; writes patients.csv and measures.csv in `directory`
    as it goes. Use as a context manager (the files are closed at the end)."""

    def __init__(self, evaluations: Sequence[Evaluation], therapy: str | None, directory: Path) -> None:
        self.evaluations = tuple(evaluations)
        self.therapy = therapy
        self.wanted = therapy_key(therapy) if therapy else frozenset()
        self.tallies = {e: Tally() for e in self.evaluations}
        self.differing: list[tuple[str, tuple[tuple[str, ...], ...]]] = []
        self.missing_as_of: list[str] = []
        self._files: list[IO[str]] = []
        self._patients = self._writer(directory / "patients.csv", PATIENT_COLUMNS)
        self._measures = self._writer(directory / "measures.csv", MEASURE_COLUMNS)

    def _writer(self, path: Path, columns: Sequence[str]) -> csv.DictWriter[str]:
        handle = path.open("w", encoding="utf-8", newline="")
        self._files.append(handle)
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        return writer

    def __enter__(self) -> Cohort:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._files:
            handle.close()

    def add(self, birth_date: date | None, results: Sequence[PatientResult]) -> None:
        """One patient's results, one per evaluation (in the order of `evaluations`)."""
        categories = []
        for evaluation, result in zip(self.evaluations, results, strict=True):
            tally = self.tallies[evaluation]
            tally.evaluated += 1
            tally.dated(result.as_of)
            ruleset = result.ruleset.ref if result.ruleset_applied else ""
            tally.rulesets[ruleset] += 1
            codes = sorted({c.code for c in result.classifications})
            tally.categories.update(codes)
            categories.append(tuple(codes))
            self._rows(evaluation, ruleset, result)
            if self.wanted:
                row = therapy_row(result, birth_date, self.wanted)
                if row is not None:
                    tally.therapy.append(row)
                    self.therapy = row.regimen  # the measures' name (drugs in their usual order), not as typed
        if len(set(categories)) > 1:
            self.differing.append((results[0].patient_id, tuple(categories)))

    def _rows(self, evaluation: Evaluation, ruleset: str, result: PatientResult) -> None:
        common = {"patient": result.patient_id, "evaluation": evaluation.label, "ruleset": ruleset}
        as_of = result.as_of.isoformat()
        for c in result.classifications:
            self._patients.writerow(
                common
                | {
                    "as_of": as_of,
                    "category": c.code,
                    "since": c.since.isoformat(),
                    "revisit_on": c.revisit_on.isoformat() if c.revisit_on else "",
                }
            )
        for m in result.measures:
            number = _number(m)
            self._measures.writerow(
                common
                | {
                    "as_of": as_of,
                    "code": m.code,
                    "start": m.start.isoformat(),
                    "end": m.end.isoformat(),
                    "therapy": m.therapy or "",
                    "value": "" if m.value is None else str(m.value),
                    "number": "" if number is None else repr(number),
                    "unit": m.unit or "",
                    "censored": "" if m.censored is None else str(m.censored).lower(),
                    "evidence": " ".join(m.evidence),
                    "reason": m.reason,
                }
            )

    @property
    def evaluated(self) -> int:
        return self.tallies[self.evaluations[0]].evaluated
