"""Rule sets: every threshold and window of a guideline, loaded from `mappings/rulesets/*.yaml`.

Code reads `ruleset.relapse.consecutive_days`, never a bare number. A rule set is immutable once
loaded; `RuleSet.ref` ("id|version") labels every result it produces.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fhir_ns.errors import ConfigError

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# How a unit of the rule sets and the timeline is written in a sentence: one convention everywhere
# (mg/day, mg/kg/day, mg/m2/day), while the data keep their short codes.
_UNIT_WORDS = {"mg/d": "mg/day", "g/d": "g/day", "mg/kg/d": "mg/kg/day", "mg/m2/d": "mg/m2/day"}


def unit_text(unit: str) -> str:
    """A unit as the sentences write it: "mg/d" -> "mg/day", "mg/m2/d" -> "mg/m2/day"; others as they are.

    A unit followed by how it was worked out ("mg/d (60 mg/m2/day x 0.68 m2)") keeps the explanation."""
    code, space, rest = unit.partition(" ")
    return _UNIT_WORDS.get(code, code) + space + rest


# Units a 24-h protein threshold may be stated in (per body size needs weight or BSA).
Protein24hUnit = Literal["mg/d", "mg/m2/d", "mg/kg/d"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Threshold(_Frozen):
    """A value in a unit and the comparison that meets it, e.g. `>= 200 mg/mmol`."""

    unit: str
    op: Literal["<", "<=", ">", ">="]
    value: float

    def met_by(self, x: float) -> bool:
        return _OPS[self.op](x, self.value)

    @property
    def compare(self) -> Callable[[float, float], bool]:
        """The comparison as a function of (value, limit), to judge many values against one threshold."""
        return _OPS[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value:g} {unit_text(self.unit)}"


class GradeThreshold(_Frozen):
    """A dipstick grade comparison, e.g. `>= 3+`."""

    op: Literal["<", "<=", ">", ">="]
    grade: str

    def __str__(self) -> str:
        return f"dipstick {self.op} {self.grade}"


class ProteinuriaCriteria(_Frozen):
    """Proteinuria thresholds; a measurement meets the criteria if it meets the one of its kind."""

    upcr: list[Threshold] = Field(default_factory=list)
    protein_24h: list[Threshold] = Field(default_factory=list)
    dipstick: GradeThreshold | None = None

    @model_validator(mode="after")
    def _units(self) -> ProteinuriaCriteria:
        for t in self.upcr:
            if t.unit not in ("mg/mmol", "mg/mg"):
                raise ValueError(f"UPCR threshold unit must be mg/mmol or mg/mg, not {t.unit}")
        for t in self.protein_24h:
            if t.unit not in ("mg/d", "mg/m2/d", "mg/kg/d"):
                raise ValueError(f"24-h protein threshold unit must be mg/d, mg/m2/d or mg/kg/d, not {t.unit}")
        return self


class CompleteRemission(ProteinuriaCriteria):
    dipstick_consecutive_days: int
    albumin: Threshold | None = None
    albumin_within_days: int  # the albumin that confirms a CR is the nearest within this many days
    stable_kidney_function_max_rise: float | None = None
    creatinine_baseline_days: int  # pre-episode creatinine: latest within this many days before onset
    creatinine_within_days: int  # the creatinine at CR: nearest within this many days


class PartialRemission(_Frozen):
    """Proteinuria below nephrotic range but not in CR, plus the optional conditions below."""

    albumin: Threshold | None = None
    albumin_within_days: int  # the albumin that goes with a proteinuria value: nearest within this many days
    min_fall_from_presenting: float | None = None


class Relapse(_Frozen):
    proteinuria: ProteinuriaCriteria | None = None  # None: the nephrotic-range criteria
    consecutive_days: int = 3
    treated_relapse_counts: bool = True
    treated_relapse_window_days: int = 7


class BodyDose(_Frozen):
    """A dose stated per body size, capped: min(per_m2 x BSA, max) or min(per_kg x weight, max)."""

    mg_per_m2: float | None = None
    mg_per_kg: float | None = None
    max_mg: float | None = None


class SteroidTrial(_Frozen):
    assessment_day: int
    adequacy_days: int | None = None  # days of full daily dose the regimen gives (default: assessment_day)
    assessment_window: tuple[int, int]
    response: Literal["complete", "any"]
    confirmation_until_day: int | None = None
    start_lookback_days: int = 14


class Steroid(_Frozen):
    standard_daily: BodyDose
    standard_alternate_day: BodyDose
    adequate_fraction: float
    trial: SteroidTrial
    dependence_days_after_stop: int
    high_dose_fraction: float


class FrequentRelapseCriterion(_Frozen):
    count: int
    window_days: int
    anchor: Literal["first-remission", "any"]


class LevelRange(_Frozen):
    low: float
    high: float
    unit: str = "ng/mL"


class Nephrotoxicity(_Frozen):
    rise_fraction: float
    min_days_apart: int
    baseline_lookback_days: int


class Cni(_Frozen):
    response_window_days: int
    course_gap_days: int  # CNI exposures this close are one course
    min_dose: dict[str, BodyDose] = Field(default_factory=dict)
    target_levels: dict[str, LevelRange] = Field(default_factory=dict)
    levels_in_range_fraction: float
    stopped_early_days: int
    nephrotoxicity: Nephrotoxicity


class DoseRange(_Frozen):
    drug: str
    unit: Literal["mg/m2/d", "mg/kg/d", "mg/d"]
    low: float
    high: float
    source: str = ""


class MultidrugResistance(_Frozen):
    window_days: int
    min_classes: int
    final_reading_days: int  # a proteinuria value is needed in the window's last this-many days
    min_dose: dict[str, BodyDose] = Field(default_factory=dict)


class Cyclophosphamide(_Frozen):
    moderate_mg_per_kg: float
    high_mg_per_kg: float


class Ckd(_Frozen):
    egfr_below: float
    fall_fraction: float
    persistence_days: int


class Intolerance(_Frozen):
    contraindications: list[str]


class OnsetAge(_Frozen):
    """Age at onset that names congenital and infantile nephrotic syndrome (RULES.md §8), in calendar months."""

    congenital_below_months: int = Field(ge=1)
    infantile_below_months: int = Field(ge=1)


class CniIntolerance(_Frozen):
    """A CNI stopped within `stopped_within_days` after one of these findings implicating it is intolerance."""

    stopped_within_days: int = Field(ge=0)
    toxicity_findings: list[str]
    # the least severity a toxicity finding needs (hypertension: stage 2 is `moderate` or worse)
    min_severity: dict[str, Literal["low", "moderate", "high"]] = Field(default_factory=dict)


class RelapsingOnCni(_Frozen):
    relapses: int = Field(ge=1)
    window_days: int = Field(ge=1)
    months_after_cni_start: int = Field(ge=0)


class Measures(_Frozen):
    """Relapse burden and treatment response (RULES.md §9): the windows and limits of the per-patient measures.

    `lasting_classes` are the steroid-sparing classes given as single doses or a fixed course (rituximab,
    cyclophosphamide) whose period runs from the first dose to the next therapy's start or the evaluation date.
    """

    min_maintenance_days: int = Field(ge=1)  # a prednis(ol)one dose held this long in remission is a maintenance dose
    before_first_therapy_months: int = Field(ge=1)  # the period before the first steroid-sparing therapy
    kidney_failure_egfr_below: float = Field(gt=0)  # eGFR (mL/min/1.73 m2) below which the kidneys have failed
    lasting_classes: list[str] = Field(default_factory=list)
    source: str


class SeriousInfection(_Frozen):
    """Infections that count as serious while immunosuppressed, on a drug of these classes or prednis(ol)one
    at or above `prednisolone_mg_per_kg_day` (prednisone equivalent), or within `days_after` stopping."""

    concepts: list[str]
    immunosuppressant_classes: list[str]
    prednisolone_mg_per_kg_day: float = Field(gt=0)
    days_after: int = Field(ge=0)


class BloodPressureLimit(_Frozen):
    """A systolic/diastolic pair in mm[Hg]: met when either value reaches its limit (>=)."""

    systolic: float
    diastolic: float

    def met_by(self, systolic: float | None, diastolic: float | None) -> bool:
        return (systolic is not None and systolic >= self.systolic) or (
            diastolic is not None and diastolic >= self.diastolic
        )

    def __str__(self) -> str:
        return f"{self.systolic:g}/{self.diastolic:g} mm[Hg]"


Sex = Literal["male", "female"]


class BloodPressureAge(_Frozen):
    """One age of a blood-pressure table: per height-percentile column, its height and its 95th-percentile BP."""

    height_cm: list[float]
    systolic_95th: list[float]
    diastolic_95th: list[float]


class HeightColumn(NamedTuple):
    """The column of a blood-pressure table chosen for a child: its height percentile, height and 95th percentile."""

    percentile: int
    height_cm: float
    p95: BloodPressureLimit
    cited_as: str


class BloodPressurePercentiles(_Frozen):
    """BP percentiles by sex, age (completed years) and height percentile, e.g. AAP 2017 Tables 4 and 5.

    Loaded from `mappings/bp/<id>.yaml`; a rule set names it by `id`."""

    id: str
    cited_as: dict[Sex, str]  # how a sentence cites the table of each sex
    height_percentiles: list[int]
    ages: dict[Sex, dict[int, BloodPressureAge]]

    @model_validator(mode="after")
    def _complete_and_monotone(self) -> BloodPressurePercentiles:
        columns = self.height_percentiles
        if columns != sorted(set(columns)) or 50 not in columns:
            raise ValueError("height_percentiles must increase and include the 50th (used when no height is known)")
        if set(self.cited_as) != {"male", "female"} or set(self.ages) != {"male", "female"}:
            raise ValueError("the table must give both sexes (male, female) in cited_as and ages")
        for sex, by_age in self.ages.items():
            ages = sorted(by_age)
            if not ages or ages != list(range(ages[0], ages[-1] + 1)):
                raise ValueError(f"{sex}: ages must follow each other without a gap, not {ages}")
            if ages != sorted(self.ages["male" if sex == "female" else "female"]):
                raise ValueError("both sexes must cover the same ages")
            for age, row in by_age.items():
                for name in ("height_cm", "systolic_95th", "diastolic_95th"):
                    values = getattr(row, name)
                    if len(values) != len(columns):
                        raise ValueError(f"{sex} {age} y {name}: {len(values)} values for {len(columns)} columns")
                    # heights rise with the percentile; BP never falls as height rises
                    strictly = name == "height_cm"
                    if any(b < a or (strictly and b == a) for a, b in pairwise(values)):
                        rule = "rise" if strictly else "never fall"
                        raise ValueError(f"{sex} {age} y {name}: values must {rule} across the columns, not {values}")
        return self

    def covers(self, age_years: int) -> bool:
        """Whether the table has this age (completed years), for both sexes (checked at load)."""
        return age_years in self.ages["male"]

    def column(self, sex: Sex, age_years: int, height_cm: float | None) -> HeightColumn | None:
        """The column nearest the child's height (a tie: the shorter); no height: the 50th. None: age not in the table."""
        row = self.ages[sex].get(age_years)
        if row is None:
            return None
        if height_cm is None:
            index = self.height_percentiles.index(50)
        else:
            index = min(range(len(row.height_cm)), key=lambda i: (abs(row.height_cm[i] - height_cm), i))
        p95 = BloodPressureLimit(systolic=row.systolic_95th[index], diastolic=row.diastolic_95th[index])
        return HeightColumn(self.height_percentiles[index], row.height_cm[index], p95, self.cited_as[sex])


class Hypertension(_Frozen):
    """Office blood pressure (RULES.md §7): stage limits, persistence, and the children's percentile table."""

    min_age_years: float  # younger: not judged
    adult_limits_from_years: float  # from this age the stage limits apply; below it, the percentile table
    stage1: BloodPressureLimit  # children: also the stage 1 limit where lower than the 95th percentile
    stage2: BloodPressureLimit  # children: also the stage 2 limit where lower than the 95th percentile + 12
    urgent: BloodPressureLimit  # one reading is enough
    stage1_days: int  # separate days at stage 1 or above ...
    stage1_window_days: int  # ... within this many days (first to last)
    stage2_days: int
    stage2_window_days: int
    child_percentiles: BloodPressurePercentiles  # named by its id in the rule set file
    child_stage2_above_95th: float = Field(gt=0)  # stage 2 = the 95th percentile + this (mm[Hg])
    child_height_within_days: int = Field(ge=0)  # the height nearest the reading, at most this many days away

    @field_validator("child_percentiles", mode="before")
    @classmethod
    def _table_by_id(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        tables: dict[str, BloodPressurePercentiles] = (info.context or {}).get("bp_tables", {})
        if value not in tables:
            raise ValueError(f"no blood-pressure table {value!r} in bp/*.yaml (known: {', '.join(sorted(tables))})")
        return tables[value]

    @model_validator(mode="after")
    def _table_covers_children(self) -> Hypertension:
        first, last = math.floor(self.min_age_years), math.ceil(self.adult_limits_from_years) - 1
        missing = [age for age in range(first, last + 1) if not self.child_percentiles.covers(age)]
        if missing:
            raise ValueError(f"blood-pressure table {self.child_percentiles.id} lacks the ages {missing}")
        return self

    def child_stage1(self, p95: BloodPressureLimit) -> BloodPressureLimit:
        """A child's stage 1 limit: the 95th percentile, or the stage 1 values where lower."""
        return _lower(p95, self.stage1)

    def child_stage2(self, p95: BloodPressureLimit) -> BloodPressureLimit:
        """A child's stage 2 limit: the 95th percentile + 12, or the stage 2 values where lower."""
        return _lower(self.child_plus(p95), self.stage2)

    def child_plus(self, p95: BloodPressureLimit) -> BloodPressureLimit:
        step = self.child_stage2_above_95th
        return BloodPressureLimit(systolic=p95.systolic + step, diastolic=p95.diastolic + step)


def _lower(a: BloodPressureLimit, b: BloodPressureLimit) -> BloodPressureLimit:
    """Each value the lower of the two."""
    return BloodPressureLimit(systolic=min(a.systolic, b.systolic), diastolic=min(a.diastolic, b.diastolic))


class AcuteKidneyInjury(_Frozen):
    """KDIGO 2012 AKI by serum creatinine (umol/L), baseline as in the NHS England AKI algorithm (2014)."""

    absolute_rise_umol_l: float  # 26.5 (0.3 mg/dL) ...
    absolute_rise_days: int  # ... within this many calendar days (48 h on dates)
    ratio_stage1: float  # 1.5
    ratio_stage2: float  # 2.0
    ratio_stage3: float  # 3.0
    stage3_creatinine_umol_l: float  # 353.6 (4.0 mg/dL) after an acute rise
    stage3_child_egfr_below: float  # < 18 y
    child_below_years: float
    rv1_days: int  # RV1: lowest value in the previous 0-this many days
    rv2_from_days: int  # RV2: median of the values from this many days before ...
    rv2_to_days: int  # ... to this many days before


class Hyperglycaemia(_Frozen):
    """Drug-induced hyperglycaemia: thresholds per unit family, and the drugs that count."""

    fasting_glucose: list[Threshold]
    random_glucose: list[Threshold]
    hba1c: list[Threshold]
    drug_classes: list[str]
    drugs: list[str]


class Population(_Frozen):
    onset_age_min_years: float = 0
    onset_age_max_years: float | None = None


class RuleSet(_Frozen):
    """One guideline's definitions as data."""

    id: str
    version: str
    title: str
    population: Population
    default_for: Literal["child", "adult"] | None = None
    sources: list[str]
    notes: list[str] = Field(default_factory=list)
    anthropometry_max_age_days: int
    nephrotic: ProteinuriaCriteria
    hypoalbuminaemia: Threshold
    complete_remission: CompleteRemission
    partial_remission: PartialRemission
    relapse: Relapse
    steroid: Steroid
    frequent_relapse: list[FrequentRelapseCriterion]
    cni: Cni
    dose_ranges: list[DoseRange] = Field(default_factory=list)
    # a course's mean dose is out of range when beyond the range by more than this share of the bound crossed
    dose_range_tolerance: float = Field(default=0.10, ge=0, lt=1)
    dose_range_min_days: int = Field(default=14, ge=1)  # a shorter course's dose is not judged
    multidrug: MultidrugResistance
    cyclophosphamide: Cyclophosphamide
    raas_persistent_proteinuria_days: int
    ckd: Ckd
    intolerance: Intolerance
    # complications (RULES.md §7); a site rule set without them does not judge them
    hypertension: Hypertension | None = None
    acute_kidney_injury: AcuteKidneyInjury | None = None
    hyperglycaemia: Hyperglycaemia | None = None
    monogenic_gene_concepts: list[str]
    careplans: dict[str, list[str]]
    onset_age: OnsetAge
    cni_intolerance: CniIntolerance
    relapsing_on_cni: RelapsingOnCni
    measures: Measures
    secondary_causes: list[str]  # Condition concepts that make a secondary nephrotic syndrome suspected
    thromboembolism_concepts: list[str]
    serious_infection: SeriousInfection

    @property
    def ref(self) -> str:
        """`id|version`, the label every result carries."""
        return f"{self.id}|{self.version}"


def load_rulesets(extra_dirs: tuple[Path, ...] = ()) -> dict[str, RuleSet]:
    """All rule sets: the shipped ones, then `rulesets/*.yaml` of each site directory (same id replaces).

    The blood-pressure tables they name come from `bp/*.yaml` of the same directories."""
    from fhir_ns.terminology import builtin_mappings_dir, load_yaml

    directories = (builtin_mappings_dir(), *extra_dirs)
    tables: dict[str, BloodPressurePercentiles] = {}
    for directory in directories:
        for path in sorted((directory / "bp").glob("*.yaml")):
            try:
                table = BloodPressurePercentiles.model_validate(load_yaml(path))
            except ValidationError as exc:
                raise ConfigError(f"blood-pressure table {path.name} is invalid:\n{exc}") from exc
            tables[table.id] = table
    out: dict[str, RuleSet] = {}
    for directory in directories:
        for path in sorted((directory / "rulesets").glob("*.yaml")):
            try:
                ruleset = RuleSet.model_validate(load_yaml(path), context={"bp_tables": tables})
            except ValidationError as exc:
                raise ConfigError(f"rule set {path.name} is invalid:\n{exc}") from exc
            out[ruleset.id] = ruleset
    if not out:
        raise ConfigError("no rule sets found")
    return out
