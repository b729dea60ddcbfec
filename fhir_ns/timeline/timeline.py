"""A patient's timeline under one rule set, as of one date: readings, body size, doses and episodes.

Everything here is derived from `PatientFacts` with the rule set's parameters; each derived fact keeps
the sources it rests on. Nothing after `as_of` is seen. A timeline does not change once built, so what the
rules ask of it again and again (body size on a day, a drug class's exposures, readings by day) is worked
out once.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from functools import cache
from operator import attrgetter, itemgetter

from msgspec import Struct
from msgspec.structs import replace

from fhir_ns.ruleset import ProteinuriaCriteria, RuleSet, Threshold, unit_text
from fhir_ns.terminology import Terminology
from fhir_ns.timeline.formulas import age_years, bsa_mosteller, ckd_epi_2021, completed_years, schwartz_bedside
from fhir_ns.timeline.model import ConditionFact, DrugExposure, Measurement, PatientFacts, ProcedureFact

PROTEINURIA = ("upcr", "protein-24h", "dipstick")
_READING_ORDER = attrgetter("on", "measurement.source")
_DAY = itemgetter(0)
_START = attrgetter("start")
_FAMILY_LABEL = {"upcr": "UPCR", "protein-24h": "24-h protein", "dipstick": "dipstick"}


@cache
def _grade_limit(op: str, grade: int) -> Threshold:
    """A dipstick threshold as a comparison of grade indexes (built once, not per reading)."""
    return Threshold(unit="grade", op=op, value=grade)  # type: ignore[arg-type]


class Level(Enum):
    """Where a proteinuria reading stands against the rule set."""

    NEPHROTIC = "nephrotic-range"
    REMISSION = "remission-range"
    INTERMEDIATE = "between remission and nephrotic range"
    UNKNOWN = "not assessable"


# A member looked up on an Enum class goes through EnumType.__getattr__ (Python 3.11), several times slower
# than a global: the per-reading code uses these.
_NEPHROTIC, _REMISSION, _INTERMEDIATE, _UNKNOWN = Level.NEPHROTIC, Level.REMISSION, Level.INTERMEDIATE, Level.UNKNOWN
_VERDICT = {
    _NEPHROTIC: "nephrotic range: ",
    _REMISSION: "remission range: ",
    _INTERMEDIATE: "below nephrotic range, above remission",
    _UNKNOWN: "not assessable: ",
}


class BodySize(Struct, frozen=True, gc=False):
    """Weight and height for one day (a Struct: one is made for nearly every creatinine and dose judged)."""

    weight_kg: float | None
    height_cm: float | None
    sources: tuple[str, ...]

    @property
    def bsa_m2(self) -> float | None:
        if self.weight_kg is None or self.height_cm is None:
            return None
        return bsa_mosteller(self.height_cm, self.weight_kg)


class Reading(Struct, frozen=True, gc=False):
    """A proteinuria measurement judged against the rule set: its level and the words for it.

    Every proteinuria value of every patient becomes one (twice when the rule set is chosen by onset) and
    few are ever quoted: so a Struct, several times cheaper to make than a dataclass, and the sentence
    put together only when asked for.
    """

    measurement: Measurement
    level: Level
    why: str  # the threshold met (">= 200 mg/mmol") or why none applies; "" between the ranges
    sources: tuple[str, ...]
    on: date  # the measurement's day, at hand for the many comparisons of days
    grade: str | None = None  # a dipstick's grade name; other values are shown as numbers

    @property
    def text(self) -> str:
        """The reading in words: "UPCR 250 mg/mmol (nephrotic range: >= 200 mg/mmol)"."""
        m = self.measurement
        shown = self.grade if self.grade is not None else _number(m)
        return f"{_FAMILY_LABEL[m.concept]} {shown} ({_VERDICT[self.level]}{self.why})"


def _number(m: Measurement) -> str:
    return f"{m.value:.3g} {unit_text(m.unit)}" if m.value < 1000 else f"{m.value:.0f} {unit_text(m.unit)}"


_Verdict = tuple[bool | None, str, tuple[str, ...]]  # met? (None: cannot say), the threshold in words, extra sources


@dataclass(frozen=True, slots=True)
class _UnitRule:
    """How a reading in one unit is held against a criterion: a comparison (after a conversion), or why it cannot be."""

    words: str  # the threshold ("dipstick >= 3+", ">= 200 mg/mmol"), or why there is no comparison
    compare: Callable[[float, float], bool] | None = None
    limit: float = 0.0
    factor: float | None = None  # converts the reading into the threshold's unit
    unit: str = ""  # the threshold's unit, to state a converted value


class _Criterion:
    """One set of proteinuria criteria with each unit's threshold found once per rule set rather than per reading."""

    __slots__ = ("criteria", "terminology", "_dipstick", "_upcr")

    def __init__(self, criteria: ProteinuriaCriteria, terminology: Terminology) -> None:
        self.criteria = criteria
        self.terminology = terminology
        self._dipstick: _UnitRule | None = None
        self._upcr: dict[str, _UnitRule] = {}

    def meets(self, m: Measurement, tl: Timeline) -> _Verdict:
        """(met?, the threshold used in words, extra sources such as weight/height). None: cannot say."""
        if m.concept == "dipstick":
            rule = self._dipstick or self._dipstick_rule()
        elif m.concept == "upcr":
            rule = self._upcr.get(m.unit) or self._upcr_rule(m.unit)
        elif not self.criteria.protein_24h:
            return None, f"the rule set has no {_FAMILY_LABEL[m.concept]} threshold", ()
        else:
            return tl._meets_24h(m, self.criteria.protein_24h)
        if rule.compare is None:
            return None, rule.words, ()
        if rule.factor is None:
            return rule.compare(m.value, rule.limit), rule.words, ()
        value = m.value * rule.factor
        return (
            rule.compare(value, rule.limit),
            f"{rule.words}, comparing {value:.3g} {unit_text(rule.unit)} converted from {unit_text(m.unit)}",
            (),
        )

    def _dipstick_rule(self) -> _UnitRule:
        threshold = self.criteria.dipstick
        if threshold is None:
            self._dipstick = _UnitRule("the rule set has no dipstick threshold")
        else:
            limit = _grade_limit(threshold.op, self.terminology.grade_index(threshold.grade))
            self._dipstick = _UnitRule(str(threshold), limit.compare, limit.value)
        return self._dipstick

    def _upcr_rule(self, unit: str) -> _UnitRule:
        self._upcr[unit] = rule = self._find_upcr_rule(unit)
        return rule

    def _find_upcr_rule(self, unit: str) -> _UnitRule:
        """The threshold in the reading's unit, else the first one it converts to."""
        thresholds = self.criteria.upcr
        if not thresholds:
            return _UnitRule("the rule set has no UPCR threshold")
        for t in thresholds:
            if t.unit == unit:
                return _UnitRule(str(t), t.compare, t.value)
        conversions = self.terminology.concepts["upcr"].family_conversions
        for t in thresholds:
            factor = conversions.get((unit, t.unit))
            if factor is not None:
                return _UnitRule(str(t), t.compare, t.value, factor, t.unit)
        return _UnitRule(f"no UPCR threshold in {unit} and no conversion")


class _Criteria:
    """A rule set's proteinuria criteria and windows, made ready once for all the patients judged with it."""

    __slots__ = ("ruleset", "terminology", "nephrotic", "remission", "relapse", "anthropometry_window")

    def __init__(self, ruleset: RuleSet, terminology: Terminology) -> None:
        self.ruleset = ruleset  # held, so that the ids keying _CRITERIA stay theirs
        self.terminology = terminology
        self.nephrotic = _Criterion(ruleset.nephrotic, terminology)
        self.remission = _Criterion(ruleset.complete_remission, terminology)
        relapse = ruleset.relapse.proteinuria
        self.relapse = None if relapse is None else _Criterion(relapse, terminology)  # None: nephrotic range
        self.anthropometry_window = timedelta(days=ruleset.anthropometry_max_age_days)


_CRITERIA: dict[tuple[int, int], _Criteria] = {}


def _criteria(ruleset: RuleSet, terminology: Terminology) -> _Criteria:
    """The rule set's criteria made ready, kept by identity (rule sets are frozen; a run has a handful)."""
    key = (id(ruleset), id(terminology))
    found = _CRITERIA.get(key)
    if found is None:
        if len(_CRITERIA) >= 32:  # a process that keeps loading rule sets does not keep them all
            _CRITERIA.clear()
        found = _CRITERIA[key] = _Criteria(ruleset, terminology)
    return found


class Remission(Struct, frozen=True, gc=False):
    on: date
    complete: bool
    text: str
    sources: tuple[str, ...]


class Relapse(Struct, frozen=True, gc=False):
    on: date
    treated: bool
    text: str
    sources: tuple[str, ...]


@dataclass(slots=True)
class Episode:
    """Active disease from onset or a relapse until complete remission (if any)."""

    start: date
    start_text: str
    start_sources: tuple[str, ...]
    presenting: Reading | None
    relapse: Relapse | None = None
    remission: Remission | None = None


class Dose(Struct, frozen=True, gc=False):
    """A daily dose in one basis, with the sources (exposure, weight, height) it rests on."""

    value: float
    unit: str  # "mg/d", "mg/kg/d", "mg/m2/d"
    sources: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.value:.0f} {unit_text(self.unit)}"
            if self.value >= 10
            else f"{self.value:.2g} {unit_text(self.unit)}"
        )


_Series = tuple[Sequence[Measurement], Sequence[date]]  # measurements in day order, and their days


def _with_days(series: list[Measurement]) -> _Series:
    return series, [m.on for m in series]


def _latest_within(series: _Series, day: date, window: timedelta) -> Measurement | None:
    """The last measurement on or before `day`, if no older than `window`."""
    measurements, days = series
    index = bisect_right(days, day)
    if index and day - days[index - 1] <= window:
        return measurements[index - 1]
    return None


@dataclass(slots=True)
class DrugCourse:
    """Exposures taken as one course: each starts within the rule set's gap after the ones before end."""

    start: date
    end: date | None
    exposures: list[DrugExposure]

    @property
    def drugs(self) -> list[str]:
        return sorted({e.drug for e in self.exposures})


@dataclass(slots=True)
class Timeline:
    facts: PatientFacts
    ruleset: RuleSet
    terminology: Terminology
    as_of: date
    measurements: dict[str, list[Measurement]] = field(default_factory=dict)
    exposures: list[DrugExposure] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    procedure_facts: list[ProcedureFact] = field(default_factory=list)  # those begun by the evaluation date
    readings: list[Reading] = field(default_factory=list)
    assessable: list[Reading] = field(default_factory=list)  # the readings whose level is known
    episodes: list[Episode] = field(default_factory=list)
    onset_note: str = ""
    _criteria: _Criteria = field(init=False, repr=False, compare=False)
    _reading_days: list[date] = field(default_factory=list, init=False, repr=False, compare=False)
    _assessable_days: list[date] = field(default_factory=list, init=False, repr=False, compare=False)
    _weights: _Series = field(default=((), ()), init=False, repr=False, compare=False)
    _heights: _Series = field(default=((), ()), init=False, repr=False, compare=False)
    _sizes: dict[date, BodySize] = field(default_factory=dict, init=False, repr=False, compare=False)
    _classes: dict[str, list[DrugExposure]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _courses: tuple[DrugExposure, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _cni_courses: tuple[DrugCourse, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, facts: PatientFacts, ruleset: RuleSet, terminology: Terminology, as_of: date) -> Timeline:
        tl = cls(facts, ruleset, terminology, as_of)
        tl._criteria = _criteria(ruleset, terminology)
        by_concept = tl.measurements
        for m in facts.measurements:
            if m.on <= as_of:
                series = by_concept.get(m.concept)
                if series is None:
                    by_concept[m.concept] = [m]
                else:
                    series.append(m)
        by_class = tl._classes
        tl._weights = _with_days(by_concept.get("weight", []))
        tl._heights = _with_days(by_concept.get("height", []))
        for e in facts.exposures:
            if e.start <= as_of:
                seen = e if e.end is None or e.end <= as_of else replace(e, end=as_of)
                tl.exposures.append(seen)
                same_class = by_class.get(seen.drug_class)
                if same_class is None:
                    by_class[seen.drug_class] = [seen]
                else:
                    same_class.append(seen)
        tl.conditions = [c for c in facts.conditions if c.onset is None or c.onset <= as_of]
        tl.procedure_facts = [
            p if p.end is None or p.end <= as_of else replace(p, end=as_of)
            for p in facts.procedures
            if p.start <= as_of
        ]
        judge = tl.judge
        tl.readings = readings = [judge(m) for c in PROTEINURIA for m in by_concept.get(c, ())]
        readings.sort(key=_READING_ORDER)
        tl._reading_days = [r.on for r in readings]
        tl.assessable = [r for r in readings if r.level is not _UNKNOWN]
        tl._assessable_days = [r.on for r in tl.assessable]
        tl.episodes = tl._episodes()
        return tl

    # -- people ----------------------------------------------------------------------------------
    def body_size(self, day: date) -> BodySize:
        """Weight and height nearest before `day` within the rule set's window (None when too old)."""
        size = self._sizes.get(day)
        if size is None:
            window = self._criteria.anthropometry_window
            w, h = _latest_within(self._weights, day, window), _latest_within(self._heights, day, window)
            sources: tuple[str, ...] = () if w is None else (w.source,)
            if h is not None:
                sources += (h.source,)
            size = BodySize(None if w is None else w.value, None if h is None else h.value, sources)
            self._sizes[day] = size
        return size

    # -- proteinuria -----------------------------------------------------------------------------
    def judge(self, m: Measurement) -> Reading:
        """Judge a proteinuria reading: nephrotic, remission range, in between, or not assessable."""
        criteria = self._criteria
        grade = self.terminology.dipstick_grades[int(m.value)] if m.unit == "grade" else None
        nephrotic, why_n, extra_n = criteria.nephrotic.meets(m, self)
        if nephrotic:
            return Reading(m, _NEPHROTIC, why_n, (m.source, *extra_n), m.on, grade)
        remission, why_r, extra_r = criteria.remission.meets(m, self)
        if remission:
            return Reading(m, _REMISSION, why_r, (m.source, *extra_r), m.on, grade)
        if nephrotic is None or remission is None:
            return Reading(m, _UNKNOWN, why_n if nephrotic is None else why_r, (m.source,), m.on, grade)
        return Reading(m, _INTERMEDIATE, "", (m.source, *extra_n, *extra_r), m.on, grade)

    def show(self, m: Measurement) -> str:
        if m.unit == "grade":
            return self.terminology.dipstick_grades[int(m.value)]
        return _number(m)

    def _meets_24h(self, m: Measurement, thresholds: Sequence[Threshold]) -> _Verdict:
        """A 24-h protein against thresholds per day, per m² or per kg: the latter need the body size of its day."""
        size = self.body_size(m.on)
        missing = []
        for t in thresholds:
            if t.unit == "mg/d":
                return t.met_by(m.value), str(t), ()
            divisor = size.bsa_m2 if t.unit == "mg/m2/d" else size.weight_kg
            if divisor is None:
                missing.append("height and weight" if t.unit == "mg/m2/d" else "weight")
                continue
            value = m.value / divisor
            return t.met_by(value), f"{value:.0f} {unit_text(t.unit)} {t.op} {t.value:g}", size.sources
        days = self.ruleset.anthropometry_max_age_days
        return None, f"no {' or '.join(missing)} within {days} days before {m.on} to express it per body size", ()

    def readings_between(self, start: date, end: date) -> list[Reading]:
        """Assessable readings with start <= day <= end."""
        days = self._assessable_days
        return self.assessable[bisect_left(days, start) : bisect_right(days, end)]

    def nearest(self, concept: str, day: date, max_days: int) -> Measurement | None:
        best: Measurement | None = None
        for m in self.measurements.get(concept, []):
            gap = abs((m.on - day).days)
            if gap <= max_days and (best is None or gap < abs((best.on - day).days)):
                best = m
        return best

    def latest_before(self, concept: str, day: date, max_days: int) -> Measurement | None:
        series = [m for m in self.measurements.get(concept, []) if day - timedelta(days=max_days) <= m.on <= day]
        return series[-1] if series else None

    # -- remission, relapse, episodes -------------------------------------------------------------
    def complete_remission_after(self, after: date, episode: Episode | None = None) -> Remission | None:
        """The first complete remission strictly after `after` (dipstick: N consecutive days in range)."""
        needed = self.ruleset.complete_remission.dipstick_consecutive_days
        run: list[Reading] = []
        for r in self.readings[bisect_right(self._reading_days, after) :]:
            if r.measurement.concept == "dipstick":
                if r.level is _REMISSION:
                    if run and (r.on - run[-1].on).days > 1:
                        run = []
                    if not run or r.on != run[-1].on:
                        run.append(r)
                    if len(run) >= needed:
                        ok, extra, why = self._remission_extras(run[0].on, episode)
                        if ok:
                            texts = ", ".join(str(x.on) for x in run)
                            return Remission(
                                run[0].on,
                                True,
                                f"dipstick {self.show(run[0].measurement)} or less on "
                                f"{len(run)} consecutive days ({texts}){why}",
                                tuple(s for x in run for s in x.sources) + extra,
                            )
                elif r.level is not _UNKNOWN:
                    run = []
                continue
            if r.level is _REMISSION:
                ok, extra, why = self._remission_extras(r.on, episode)
                if ok:
                    return Remission(r.on, True, f"{r.text}{why}", r.sources + extra)
        return None

    def _remission_extras(self, day: date, episode: Episode | None) -> tuple[bool, tuple[str, ...], str]:
        """Adult CR also needs normal albumin and stable kidney function, when the rule set asks."""
        rs = self.ruleset.complete_remission
        sources: list[str] = []
        words: list[str] = []
        if rs.albumin is not None:
            albumin = self.nearest("albumin", day, rs.albumin_within_days)
            if albumin is None or not rs.albumin.met_by(albumin.value):
                return False, (), ""
            sources.append(albumin.source)
            words.append(f"albumin {albumin.value:.0f} g/L")
        if rs.stable_kidney_function_max_rise is not None and episode is not None:
            baseline = self.latest_before("creatinine", episode.start, rs.creatinine_baseline_days)
            now = self.nearest("creatinine", day, rs.creatinine_within_days)
            if baseline and now:
                if now.value > baseline.value * (1 + rs.stable_kidney_function_max_rise):
                    return False, (), ""
                sources += [baseline.source, now.source]
                words.append(f"creatinine {now.value:.0f} vs {baseline.value:.0f} umol/L before")
            else:
                words.append("kidney function stability not assessable (no creatinine pair)")
        return True, tuple(sources), (" with " + ", ".join(words)) if words else ""

    def partial_remission(self, reading: Reading, episode: Episode | None) -> tuple[bool | None, str, tuple[str, ...]]:
        """Is this in-between reading a partial remission? None when a needed datum is missing."""
        rs = self.ruleset.partial_remission
        if reading.level is not Level.INTERMEDIATE:
            return False, "", ()
        sources: list[str] = []
        words: list[str] = []
        if rs.albumin is not None:
            albumin = self.nearest("albumin", reading.on, rs.albumin_within_days)
            if albumin is None:
                return (
                    None,
                    f"no albumin within {rs.albumin_within_days} days of {reading.on} to judge partial remission",
                    (),
                )
            if not rs.albumin.met_by(albumin.value):
                return (
                    False,
                    f"albumin {albumin.value:.0f} g/L (partial remission needs {rs.albumin})",
                    (albumin.source,),
                )
            sources.append(albumin.source)
            words.append(f"albumin {albumin.value:.0f} g/L {rs.albumin.op} {rs.albumin.value:g}")
        if rs.min_fall_from_presenting is not None:
            presenting = episode.presenting if episode else None
            if (
                presenting is None
                or presenting.measurement.concept != reading.measurement.concept
                or presenting.measurement.unit != reading.measurement.unit
                or presenting.measurement.value <= 0
            ):
                return None, "no presenting value of the same kind to measure the fall from", ()
            fall = 1 - reading.measurement.value / presenting.measurement.value
            if fall < rs.min_fall_from_presenting:
                return (
                    False,
                    f"fall of {fall:.0%} from {self.show(presenting.measurement)} (needs {rs.min_fall_from_presenting:.0%})",
                    (),
                )
            sources.append(presenting.measurement.source)
            words.append(f"{fall:.0%} below the presenting {self.show(presenting.measurement)}")
        return True, f"{reading.text} with {', '.join(words)}" if words else reading.text, (*reading.sources, *sources)

    def _relapse_after(self, after: date) -> Relapse | None:
        rs = self.ruleset.relapse
        criterion = self._criteria.relapse
        run: list[Reading] = []
        for r in self.readings[bisect_right(self._reading_days, after) :]:
            meets = bool(criterion.meets(r.measurement, self)[0]) if criterion else r.level is _NEPHROTIC
            if not meets:
                if r.level is not _UNKNOWN:
                    run = []
                continue
            if run and (r.on - run[-1].on).days > 1:
                run = []
            if not run or r.on != run[-1].on:
                run.append(r)
            if len(run) >= rs.consecutive_days:
                days = ", ".join(str(x.on) for x in run)
                return Relapse(
                    run[0].on,
                    False,
                    f"{r.text.split(' (')[0]} and nephrotic-range proteinuria on {len(run)} consecutive day(s) ({days})",
                    tuple(s for x in run for s in x.sources),
                )
            if rs.treated_relapse_counts:
                escalation = self._steroid_escalation(r.on, rs.treated_relapse_window_days)
                if escalation is not None:
                    values = ", ".join(f"{x.text} on {x.on}" for x in run)
                    return Relapse(
                        run[0].on,
                        True,
                        f"treated relapse: {values}, followed on {escalation[0].start} by "
                        f"{self.terminology.drug_name(escalation[0].drug)} {escalation[1]}",
                        (*(src for x in run for src in x.sources), escalation[0].source, *escalation[1].sources),
                    )
        return None

    def _steroid_escalation(self, day: date, window: int) -> tuple[DrugExposure, Dose] | None:
        """A glucocorticoid course started within `window` days after `day` at a full daily dose."""
        last = day + timedelta(days=window)
        fraction = self.ruleset.steroid.adequate_fraction
        for e in self.steroid_courses():
            if day <= e.start <= last and not e.alternate_day:
                dose = self.daily_dose(e, e.start, "mg/d", prednisone_equivalent=True)
                if dose is not None and self.share_of_standard_steroid(dose.value, e.start, fraction):
                    return e, dose
        return None

    def share_of_standard_steroid(self, mg_per_day: float, day: date, fraction: float) -> bool | None:
        """Is a daily prednisone-equivalent dose at least `fraction` of the standard dose on `day`?

        A dose at the fraction of the rule set's cap is enough whatever the body size; below it, the
        standard per m² or per kg decides, and None means no body size to decide with.
        """
        cap = self.ruleset.steroid.standard_daily.max_mg
        if cap is not None and mg_per_day >= fraction * cap:
            return True
        standard = self.standard_steroid_dose(day)
        if standard is None:
            return None
        return mg_per_day >= fraction * standard.value

    def _first_nephrotic(self, since: date) -> Reading | None:
        """The first nephrotic-range reading on or after `since`."""
        readings = self.readings
        for i in range(bisect_left(self._reading_days, since), len(readings)):
            if readings[i].level is _NEPHROTIC:
                return readings[i]
        return None

    def _episodes(self) -> list[Episode]:
        first = self._first_nephrotic(date.min)
        ns_conditions = [c for c in self.conditions if "nephrotic-syndrome" in c.concepts and c.onset is not None]
        condition = min(ns_conditions, key=lambda c: c.onset or date.max, default=None)
        if first is None and condition is None:
            return []
        if first is not None and (condition is None or condition.onset is None or first.on <= condition.onset):
            episode = Episode(first.on, f"first nephrotic-range proteinuria: {first.text}", first.sources, first)
        else:
            assert condition is not None and condition.onset is not None
            presenting = self._first_nephrotic(condition.onset)
            episode = Episode(
                condition.onset,
                f"nephrotic syndrome recorded with onset {condition.onset}",
                (condition.source,),
                presenting,
            )
        episodes = [episode]
        while True:
            remission = self.complete_remission_after(episode.start, episode)
            if remission is None:
                break
            episode.remission = remission
            relapse = self._relapse_after(remission.on)
            if relapse is None:
                break
            presenting = self._first_nephrotic(relapse.on)
            episode = Episode(relapse.on, relapse.text, relapse.sources, presenting, relapse=relapse)
            episodes.append(episode)
        return episodes

    @property
    def relapses(self) -> list[Relapse]:
        """Every relapse after a complete remission, whatever brought the remission about (steroid, CNI or
        another agent): RULES.md §9. The one list every rule and measure counts relapses from."""
        return [e.relapse for e in self.episodes[1:] if e.relapse is not None]

    def in_remission_on(self, day: date) -> bool:
        for episode in reversed(self.episodes):
            if episode.start <= day:
                return episode.remission is not None and episode.remission.on <= day
        return False

    # -- drugs -----------------------------------------------------------------------------------
    def of_class(self, drug_class: str) -> Sequence[DrugExposure]:
        return self._classes.get(drug_class, ())

    def glucocorticoids(self) -> Sequence[DrugExposure]:
        return self.of_class("glucocorticoid")

    def steroid_courses(self) -> tuple[DrugExposure, ...]:
        """Glucocorticoid taken day by day (oral or unspecified route); single IV pulses are not a course."""
        if self._courses is None:
            self._courses = tuple(e for e in self.glucocorticoids() if not e.single_administration and e.route != "iv")
        return self._courses

    def cni_courses(self) -> tuple[DrugCourse, ...]:
        """Calcineurin-inhibitor exposures joined into courses (gaps up to the rule set's days, switching CNI included)."""
        if self._cni_courses is None:
            self._cni_courses = self._join(self.of_class("calcineurin-inhibitor"))
        return self._cni_courses

    def courses_of(self, drug: str) -> tuple[DrugCourse, ...]:
        """One drug's day-by-day exposures joined into courses like `cni_courses` (single doses left out)."""
        return self._join([e for e in self.exposures if e.drug == drug and not e.single_administration])

    # -- procedures --------------------------------------------------------------------------------
    def procedures(self, concept: str) -> list[ProcedureFact]:
        """The procedures of one concept (plasma-exchange, dialysis, kidney-transplant) begun by the evaluation date."""
        return [p for p in self.procedure_facts if p.concept == concept]

    def therapy_procedures(self) -> list[ProcedureFact]:
        """Procedures that are a treatment period of their own (plasma exchange)."""
        known = self.terminology.procedures
        return [p for p in self.procedure_facts if p.concept in known and known[p.concept].therapy]

    def kidney_failure_procedure(self) -> ProcedureFact | None:
        """The first dialysis or kidney transplant on record by the evaluation date: kidney failure from its start."""
        known = self.terminology.procedures
        return next((p for p in self.procedure_facts if p.concept in known and known[p.concept].kidney_failure), None)

    def courses_dosed_as(self, drug: str) -> tuple[DrugCourse, ...]:
        """Courses of `drug` and of the drugs dosed as it (mycophenolic acid as mycophenolate mofetil), their doses
        converted to mg of `drug`; each exposure keeps its own drug name and source."""
        factors = {
            d.name: d.dosed_as[1] for d in self.terminology.drugs.values() if d.dosed_as and d.dosed_as[0] == drug
        }
        factors[drug] = 1.0
        converted = [
            e if factors[e.drug] == 1.0 else _scaled(e, factors[e.drug])
            for e in self.exposures
            if e.drug in factors and not e.single_administration
        ]
        return self._join(converted)

    def _join(self, exposures: Iterable[DrugExposure]) -> tuple[DrugCourse, ...]:
        gap = timedelta(days=self.ruleset.cni.course_gap_days)
        courses: list[DrugCourse] = []
        for e in sorted(exposures, key=_START):
            last = courses[-1] if courses else None
            if last is not None and (last.end is None or e.start <= last.end + gap):
                last.exposures.append(e)
                last.end = None if last.end is None or e.end is None else max(last.end, e.end)
            else:
                courses.append(DrugCourse(e.start, e.end, [e]))
        return tuple(courses)

    def standard_steroid_dose(self, day: date, alternate_day: bool = False) -> Dose | None:
        """The rule set's standard prednis(ol)one dose for this patient on `day` (mg/day), or None."""
        spec = self.ruleset.steroid.standard_alternate_day if alternate_day else self.ruleset.steroid.standard_daily
        return self.body_dose(spec.mg_per_m2, spec.mg_per_kg, spec.max_mg, day)

    def body_dose(self, per_m2: float | None, per_kg: float | None, cap: float | None, day: date) -> Dose | None:
        size = self.body_size(day)
        if per_m2 is not None and size.bsa_m2 is not None:
            value = per_m2 * size.bsa_m2
            words = f"{per_m2:g} mg/m2/day x {size.bsa_m2:.2f} m2"
        elif per_kg is not None and size.weight_kg is not None:
            value = per_kg * size.weight_kg
            words = f"{per_kg:g} mg/kg/day x {size.weight_kg:.1f} kg"
        else:
            return None
        if cap is not None and value > cap:
            value = cap
            words += f", capped at {cap:g} mg/day"
        return Dose(value, f"mg/d ({words})", size.sources)

    def daily_dose(
        self, e: DrugExposure, day: date, unit: str, prednisone_equivalent: bool = False, high: bool = False
    ) -> Dose | None:
        """The exposure's daily dose on `day` in mg/d, mg/kg/d or mg/m2/d (None if it cannot be computed).

        A dose written as a range gives its low end, or its high end with `high`; never a midpoint.
        """
        if e.daily_dose is None:
            return None
        mg = e.daily_dose_high if high and e.daily_dose_high is not None else e.daily_dose
        sources = [e.source]
        if e.dose_basis in ("mg/kg", "mg/m2"):
            size = self.body_size(day)
            divisor = size.weight_kg if e.dose_basis == "mg/kg" else size.bsa_m2
            if divisor is None:
                return None
            mg *= divisor
            sources += size.sources
        if prednisone_equivalent:
            mg *= self.terminology.drugs[e.drug].prednisone_equivalent or 1.0
        if unit == "mg/d":
            return Dose(mg, unit, tuple(sources))
        size = self.body_size(day)
        divisor = size.weight_kg if unit == "mg/kg/d" else size.bsa_m2
        if divisor is None:
            return None
        return Dose(mg / divisor, unit, tuple(dict.fromkeys([*sources, *size.sources])))

    def mean_daily_dose(
        self,
        exposures: Iterable[DrugExposure],
        start: date,
        days: int,
        prednisone_equivalent: bool = False,
        high: bool = False,
    ) -> tuple[float | None, tuple[str, ...]]:
        """Mean mg/day over [start, start + days), days without the drug counting zero; None if a dose is unknown
        (then the sources are the exposure's own). Doses written as ranges count their low end, or their high
        end with `high`."""
        total = 0.0
        sources: list[str] = []
        end = start + timedelta(days=days - 1)
        for e in exposures:
            first = max(e.start, start)
            last = min(e.end or self.as_of, end)
            if last < first:
                continue
            dose = self.daily_dose(e, first, "mg/d", prednisone_equivalent, high)
            if dose is None:
                return None, (e.source,)
            covered = 1 if e.single_administration else (last - first).days + 1
            total += dose.value * covered
            sources += dose.sources
        return total / days, tuple(dict.fromkeys(sources))

    def dose_ranges_in(self, exposures: Iterable[DrugExposure], start: date, days: int) -> list[DrugExposure]:
        """The exposures overlapping [start, start + days) whose dose was written as a range."""
        end = start + timedelta(days=days - 1)
        return [e for e in exposures if e.dose_range and e.start <= end and (e.end is None or e.end >= start)]

    def unknown_dose(self, exposures: Iterable[DrugExposure], source: str, day: date) -> str:
        """Why the dose of the exposure(s) from `source` cannot be computed, in words."""
        mine = [e for e in exposures if e.source == source]
        for e in mine:
            if e.dose_unknown:
                return f"the dose of {source} cannot be used: {e.dose_unknown}"
        for e in mine:
            if e.daily_dose is None:
                return f"{source} records no dose"
        return (
            f"the dose of {source} is per body size and there is no weight/height within "
            f"{self.ruleset.anthropometry_max_age_days} days before {day}"
        )

    # -- kidney function -------------------------------------------------------------------------
    def egfr_series(self) -> list[tuple[date, float, tuple[str, ...], str]]:
        """(day, eGFR, sources, equation) by the equation fitting the age on that day (RULES §6b).

        Under 18: a reported value made with a paediatric equation, else bedside Schwartz from creatinine and
        height; a lab's adult-equation value is not used. From 18: a reported CKD-EPI 2021 value, else
        CKD-EPI 2021 from creatinine. A day with a usable reported value needs no creatinine.
        """
        birth, sex = self.facts.birth_date, self.facts.sex
        out: list[tuple[date, float, tuple[str, ...], str]] = []
        for concept in self.terminology.concepts.values():
            if concept.equation is None:
                continue
            for m in self.measurements.get(concept.name, ()):
                if self._egfr_usable(concept.equation, concept.equation_for, m.on):
                    out.append((m.on, m.value, (m.source,), f"{concept.equation}, reported"))
        reported_days = {d for d, *_ in out}
        for m in self.measurements.get("creatinine", []):
            if m.on in reported_days or birth is None:
                continue
            if completed_years(birth, m.on) < 18:  # age under 18 (the fraction of a year never adds a birthday)
                size = self.body_size(m.on)
                if size.height_cm is None:
                    continue
                out.append(
                    (m.on, schwartz_bedside(size.height_cm, m.value), (m.source, *size.sources), "bedside Schwartz")
                )
            elif sex in ("male", "female"):
                age = age_years(birth, m.on)
                out.append((m.on, ckd_epi_2021(m.value, age, sex == "female"), (m.source,), "CKD-EPI 2021"))
        out.sort(key=_DAY)
        return out

    def unused_egfr(self) -> list[tuple[Measurement, str]]:
        """Reported eGFR values not used because their equation does not fit the age (with the equation)."""
        out = []
        for concept in self.terminology.concepts.values():
            if concept.equation is not None:
                for m in self.measurements.get(concept.name, ()):
                    if not self._egfr_usable(concept.equation, concept.equation_for, m.on):
                        out.append((m, concept.equation))
        return sorted(out, key=lambda pair: pair[0].on)

    def _egfr_usable(self, equation: str, made_for: str | None, day: date) -> bool:
        birth = self.facts.birth_date
        if birth is None:
            return made_for != "child"
        if completed_years(birth, day) < 18:
            return made_for == "child"
        return equation == "CKD-EPI 2021"


def _scaled(e: DrugExposure, factor: float) -> DrugExposure:
    """The exposure with its dose(s) multiplied by `factor` (a dose converted to another drug's mg)."""
    return replace(
        e,
        daily_dose=None if e.daily_dose is None else e.daily_dose * factor,
        daily_dose_high=None if e.daily_dose_high is None else e.daily_dose_high * factor,
    )
