"""Build a patient's chart from plain values, in days from the start of the story, and classify it.

chart = Chart(born_years_before=6)
chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 42, mg=40)
chart.upcr(14, 10)
result = chart.evaluate(as_of_day=60)
"""

from __future__ import annotations

from datetime import date, timedelta

from fhir_ns.rules import PatientResult, evaluate
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.timeline.model import (
    ConditionFact,
    DrugExposure,
    GeneticResult,
    Intolerance,
    Measurement,
    PatientFacts,
)
from fhir_ns.timeline.timeline import Timeline

START = date(2023, 1, 2)
TERMINOLOGY = load_terminology()
RULESETS = load_rulesets()
CLASSES = {d.name: d.drug_class for d in TERMINOLOGY.drugs.values()}


def day(n: int) -> date:
    return START + timedelta(days=n)


class Chart:
    def __init__(
        self,
        born_years_before: float | None = 6,
        sex: str | None = "female",
        weight: float | None = 20,
        height: float | None = 115,
    ) -> None:
        born = None if born_years_before is None else START - timedelta(days=round(born_years_before * 365.25))
        self.facts = PatientFacts("p1", "Patient/p1", birth_date=born, sex=sex)
        self._n = 0
        if weight is not None:
            self.measure("weight", -1, weight, "kg")
        if height is not None:
            self.measure("height", -1, height, "cm")

    def _source(self, rtype: str) -> str:
        self._n += 1
        return f"{rtype}/{rtype[:3].lower()}{self._n}"

    def measure(self, concept: str, on: int, value: float, unit: str) -> Chart:
        self.facts.measurements.append(Measurement(concept, day(on), value, unit, self._source("Observation")))
        return self

    def upcr(self, on: int, mg_mmol: float) -> Chart:
        return self.measure("upcr", on, mg_mmol, "mg/mmol")

    def nephrotic_days(self, first: int, days: int, mg_mmol: float = 250) -> Chart:
        """Nephrotic-range UPCR on `days` consecutive days from `first`."""
        for n in range(days):
            self.upcr(first + n, mg_mmol)
        return self

    def upcr_mg_mg(self, on: int, value: float) -> Chart:
        return self.measure("upcr", on, value, "mg/mg")

    def protein_24h(self, on: int, mg_day: float) -> Chart:
        return self.measure("protein-24h", on, mg_day, "mg/d")

    def dipstick(self, on: int, grade: str) -> Chart:
        return self.measure("dipstick", on, TERMINOLOGY.grade_index(grade), "grade")

    def albumin(self, on: int, g_l: float) -> Chart:
        return self.measure("albumin", on, g_l, "g/L")

    def creatinine(self, on: int, umol_l: float) -> Chart:
        return self.measure("creatinine", on, umol_l, "umol/L")

    def level(self, drug: str, on: int, ng_ml: float) -> Chart:
        return self.measure(f"{drug}-level", on, ng_ml, "ng/mL")

    def bp(self, on: int, systolic: float | None, diastolic: float | None) -> Chart:
        """An office blood pressure (mm[Hg]) as two Observations; None leaves one out."""
        if systolic is not None:
            self.measure("bp-systolic", on, systolic, "mm[Hg]")
        if diastolic is not None:
            self.measure("bp-diastolic", on, diastolic, "mm[Hg]")
        return self

    def glucose(self, on: int, value: float, unit: str = "mmol/L", fasting: bool = False) -> Chart:
        return self.measure("glucose-fasting" if fasting else "glucose", on, value, unit)

    def hba1c(self, on: int, value: float, unit: str = "mmol/mol") -> Chart:
        return self.measure("hba1c", on, value, unit)

    def weight(self, on: int, kg: float) -> Chart:
        return self.measure("weight", on, kg, "kg")

    def drug(
        self,
        name: str,
        start: int,
        end: int | None,
        mg: float | None,
        basis: str = "mg",
        alternate_day: bool = False,
        single: bool = False,
        route: str | None = None,
        high_mg: float | None = None,
        stopped_for_adverse_effect: bool = False,
    ) -> Chart:
        self.facts.exposures.append(
            DrugExposure(
                name,
                CLASSES[name],
                day(start),
                None if end is None else day(end),
                mg,
                basis,
                self._source("MedicationAdministration" if single else "MedicationStatement"),
                alternate_day,
                route,
                single,
                daily_dose_high=high_mg,
                stopped_for_adverse_effect=stopped_for_adverse_effect,
            )
        )
        return self

    def prednisolone(self, start: int, end: int | None, mg: float, alternate_day: bool = False) -> Chart:
        """`mg` is the mean daily dose (an alternate-day 40 mg is 20 mg/day)."""
        return self.drug("prednisolone", start, end, mg, alternate_day=alternate_day)

    def condition(self, concepts: set[str], onset: int | None, abated: int | None = None) -> Chart:
        self.facts.conditions.append(
            ConditionFact(
                frozenset(concepts),
                None if onset is None else day(onset),
                None if abated is None else day(abated),
                True,
                self._source("Condition"),
            )
        )
        return self

    def intolerance(self, drug: str, on: int | None, active: bool = True) -> Chart:
        """An allergy or intolerance record naming `drug` (AllergyIntolerance)."""
        drug_class = TERMINOLOGY.drugs[drug].drug_class
        self.facts.intolerances.append(
            Intolerance(drug, drug_class, None if on is None else day(on), active, self._source("AllergyIntolerance"))
        )
        return self

    def genetic(self, on: int, genes: set[str], pathogenic: bool) -> Chart:
        self.facts.genetics.append(
            GeneticResult(frozenset(genes), ("NPHS2",), pathogenic, day(on), self._source("Observation"))
        )
        return self

    def evaluate(self, as_of_day: int, ruleset: str | None = None) -> PatientResult:
        self.facts.sort()
        return evaluate(self.facts, RULESETS, TERMINOLOGY, day(as_of_day), ruleset)

    def timeline(self, as_of_day: int, ruleset: str = "ipna-2022-child") -> Timeline:
        """The timeline under a named rule set, to look at readings and episodes directly."""
        self.facts.sort()
        return Timeline.build(self.facts, RULESETS[ruleset], TERMINOLOGY, day(as_of_day))


def steroid_sensitive_child(born_years_before: float | None = 6) -> Chart:
    """A child (20 kg, 115 cm) presenting on day 0, on prednisolone 48 mg/day (60 mg/m2) days 0-41, in CR on day 10."""
    chart = Chart(born_years_before=born_years_before)
    return chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=48).upcr(10, 10)


def steroid_resistant_child(weight: float | None = 20, height: float | None = 115) -> Chart:
    """A child presenting on day 0, on prednisolone 48 mg/day (60 mg/m2 at 20 kg, 115 cm) days 0-41, nephrotic on day 28."""
    chart = Chart(weight=weight, height=height)
    return chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=48).upcr(28, 400).albumin(28, 20)


def codes(result: PatientResult) -> list[str]:
    return [c.code for c in result.classifications]


def finding_codes(result: PatientResult) -> list[str]:
    return [f.code for f in result.findings]


def findings(result: PatientResult, code: str) -> list:
    """The findings of one code."""
    return [f for f in result.findings if f.code == code]


def one(result: PatientResult, code: str):
    """The one finding of a code (fails when there are none or several)."""
    found = findings(result, code)
    assert len(found) == 1, f"expected one {code}, got {finding_codes(result)}"
    return found[0]
