"""Safety and monitoring findings (RULES.md §4), each with its evidence and one sentence with the numbers."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import date, timedelta
from statistics import fmean, median

from fhir_ns.catalogue import info
from fhir_ns.rules.result import Finding, PatientResult
from fhir_ns.rules.steroid import Response, TrialOutcome
from fhir_ns.ruleset import BloodPressureLimit, Hypertension, Sex, Threshold, unit_text
from fhir_ns.timeline.formulas import age_years, completed_years, gfr_category
from fhir_ns.timeline.model import DrugExposure, Measurement
from fhir_ns.timeline.timeline import Dose, DrugCourse, Level, Timeline


def find(tl: Timeline, result: PatientResult, trials: dict[str, TrialOutcome]) -> None:
    """Add every finding the timeline shows to `result`."""
    for check in (
        _inadequate_trials,
        _cni_levels,
        _cni_nephrotoxicity,
        _cni_stopped_early,
        _cyclophosphamide,
        _dose_ranges,
        _raas,
        _ckd,
        _monogenic,
        _steroid_intolerance,
        _thromboembolism,
        _serious_infection,
        _hypertension,
        _acute_kidney_injury,
        _drug_induced_hyperglycaemia,
    ):
        check(tl, result, trials)
    result.findings.sort(key=lambda f: (f.since, f.code))


def _add(
    result: PatientResult,
    code: str,
    since: date,
    reason: str,
    evidence: Sequence[str],
    severity: str | None = None,
    category: str | None = None,
    implicated: Sequence[str] = (),
) -> None:
    meta = info(code)
    result.findings.append(
        Finding(
            code,
            severity or meta.severity,
            category or meta.category,
            since,
            reason,
            tuple(dict.fromkeys(evidence)),
            tuple(dict.fromkeys(implicated)),
        )
    )


def _inadequate_trials(tl: Timeline, result: PatientResult, trials: dict[str, TrialOutcome]) -> None:
    for outcome in trials.values():
        if outcome.response is Response.INADEQUATE and outcome.since is not None and outcome.course is not None:
            category = "DOSELINDW" if outcome.dose_basis == "per kg" else "DOSELINDSA"
            _add(
                result,
                "inadequate-steroid-trial",
                outcome.since,
                f"{tl.terminology.drug_name(outcome.course.drug)} course started {outcome.course.start}: {outcome.reason}; steroid resistance "
                "cannot be concluded from it",
                outcome.evidence,
                category=category,
                implicated=[outcome.course.source],
            )


def _cni_levels(tl: Timeline, result: PatientResult, _: object) -> None:
    for drug, target in sorted(tl.ruleset.cni.target_levels.items()):
        on_drug = [e for e in tl.exposures if e.drug == drug]
        if not on_drug:  # no level counts as taken on treatment
            continue
        levels = [m for m in tl.measurements.get(f"{drug}-level", []) if any(e.covers(m.on) for e in on_drug)]
        outside = [m for m in levels if not target.low <= m.value <= target.high]
        if not outside:
            continue
        latest = outside[-1]
        direction = "high" if latest.value > target.high else "low"
        _add(
            result,
            "cni-level-out-of-range",
            outside[0].on,
            f"{len(outside)} of {len(levels)} {tl.terminology.drug_name(drug)} levels taken on treatment were outside the target "
            f"{target.low:g}-{target.high:g} {target.unit} (latest {latest.value:g} {target.unit} on {latest.on}, {direction})",
            [m.source for m in outside],
            implicated=[e.source for e in on_drug],
        )


def _cni_nephrotoxicity(tl: Timeline, result: PatientResult, _: object) -> None:
    spec = tl.ruleset.cni.nephrotoxicity
    for course in tl.cni_courses():
        baseline = tl.latest_before("creatinine", course.start, spec.baseline_lookback_days)
        if baseline is None:
            continue
        limit = baseline.value * (1 + spec.rise_fraction)
        during = [
            m
            for m in tl.measurements.get("creatinine", [])
            if course.start < m.on and (course.end is None or m.on <= course.end)
        ]
        high = [m for m in during if m.value > limit]
        for i, first in enumerate(high):
            later = next(
                (m for m in high[i + 1 :] if (m.on - first.on).days >= spec.min_days_apart and m.value >= first.value),
                None,
            )
            if later is None:
                continue
            rise = later.value / baseline.value - 1
            _add(
                result,
                "cni-nephrotoxicity",
                later.on,
                f"creatinine {first.value:.0f} umol/L on {first.on} and {later.value:.0f} umol/L on {later.on} "
                f"({(later.on - first.on).days} days apart, not falling), {rise:.0%} above the pre-CNI baseline "
                f"{baseline.value:.0f} umol/L of {baseline.on} (limit {spec.rise_fraction:.0%})",
                [baseline.source, first.source, later.source],
                implicated=[e.source for e in course.exposures],
            )
            break


def _cni_stopped_early(tl: Timeline, result: PatientResult, _: object) -> None:
    minimum = tl.ruleset.cni.stopped_early_days
    for course in tl.cni_courses():
        if course.end is None or course.end >= tl.as_of:
            continue
        if any(e.stopped_for_adverse_effect for e in course.exposures):
            continue  # stopped for toxicity: intolerance (cni-intolerant), not a premature stop
        days = (course.end - course.start).days + 1
        if days >= minimum:
            continue
        responded = next((r for r in tl.readings_between(course.start, course.end) if r.level is Level.REMISSION), None)
        if responded is None:
            partial = [r for r in tl.readings_between(course.start, course.end) if tl.partial_remission(r, None)[0]]
            responded = partial[0] if partial else None
        if responded is None:
            continue
        _add(
            result,
            "cni-stopped-early",
            course.end,
            f"{tl.terminology.drug_names(course.drugs)} stopped on {course.end} after {days} days (less than {minimum} days) although "
            f"the patient responded ({responded.text} on {responded.on})",
            [*(e.source for e in course.exposures), *responded.sources],
            implicated=[e.source for e in course.exposures],
        )


def _cyclophosphamide(tl: Timeline, result: PatientResult, _: object) -> None:
    spec = tl.ruleset.cyclophosphamide
    exposures = [e for e in tl.exposures if e.drug == "cyclophosphamide"]
    if not exposures:
        return
    total = 0.0
    sources: list[str] = []
    crossed: dict[str, date] = {}
    for e in exposures:
        days = 1 if e.single_administration else ((e.end or tl.as_of) - e.start).days + 1
        dose = tl.daily_dose(e, e.start, "mg/kg/d")
        if dose is None:
            result.notes.append(f"cumulative cyclophosphamide not computed: no dose or no weight for {e.source}")
            return
        total += dose.value * days
        sources += dose.sources
        for level, limit in (("moderate", spec.moderate_mg_per_kg), ("high", spec.high_mg_per_kg)):
            if total > limit and level not in crossed:
                crossed[level] = e.end or e.start
    if not crossed:
        return
    severity = "high" if "high" in crossed else "moderate"
    ranged = any(e.dose_range for e in exposures)
    limit = spec.high_mg_per_kg if severity == "high" else spec.moderate_mg_per_kg
    _add(
        result,
        "cyclophosphamide-cumulative-dose",
        crossed["moderate"],
        f"cumulative cyclophosphamide {'at least ' if ranged else ''}{total:.0f} mg/kg over {len(exposures)} "
        f"record(s){' (doses written as ranges counted at their low end)' if ranged else ''} exceeds {limit:g} mg/kg "
        f"({severity}; limits {spec.moderate_mg_per_kg:g} and {spec.high_mg_per_kg:g} mg/kg)",
        sources,
        severity=severity,
        implicated=[e.source for e in exposures],
    )


def _dose_ranges(tl: Timeline, result: PatientResult, _: object) -> None:
    """Once per course: the mean dose over the course (days without the drug inside it count zero), when the
    course lasted the rule set's minimum days and the mean lies beyond the range by more than its tolerance."""
    tolerance = tl.ruleset.dose_range_tolerance
    for spec in tl.ruleset.dose_ranges:
        for course in tl.courses_dosed_as(spec.drug):
            days = ((course.end or tl.as_of) - course.start).days + 1
            if days < tl.ruleset.dose_range_min_days:
                continue
            mean = _course_mean(tl, course, days, spec.unit)
            if mean is None:
                continue
            low = mean.value < spec.low * (1 - tolerance)
            if not low and mean.value <= spec.high * (1 + tolerance):
                continue
            per_size = "SA" if spec.unit == "mg/m2/d" else "W"
            _add(
                result,
                "dose-out-of-range",
                course.start,
                f"{_dosed_as_words(tl, course, spec.drug)} mean {mean} over {days} days from {course.start} is "
                f"{'below' if low else 'above'} the range {spec.low:g}-{spec.high:g} {unit_text(spec.unit)} by more than the "
                f"{tolerance:.0%} tolerance ({spec.source})",
                mean.sources,
                category=f"DOSE{'L' if low else 'H'}IND{per_size}",
                implicated=[e.source for e in course.exposures],
            )


def _dosed_as_words(tl: Timeline, course: DrugCourse, drug: str) -> str:
    """The drug a dose range is for, naming any drug of the course dosed as it and the conversion."""
    term = tl.terminology
    conversions = [
        f"{term.drug_name(d)} converted at {dosed_as[1]:.3g} mg {term.drug_name(drug)} per mg"
        for d in course.drugs
        if d != drug and (dosed_as := term.drugs[d].dosed_as) is not None
    ]
    if not conversions:
        return term.drug_name(drug)
    return f"{term.drug_names(course.drugs)} (as {term.drug_name(drug)}: {', '.join(conversions)})"


def _course_mean(tl: Timeline, course: DrugCourse, days: int, unit: str) -> Dose | None:
    """The course's mean daily dose in `unit`, per body size on the course's first day (None when unknown)."""
    mean, sources = tl.mean_daily_dose(course.exposures, course.start, days)
    if mean is None:
        return None
    if unit == "mg/d":
        return Dose(mean, unit, sources)
    size = tl.body_size(course.start)
    divisor = size.weight_kg if unit == "mg/kg/d" else size.bsa_m2
    if divisor is None:
        return None
    return Dose(mean / divisor, unit, tuple(dict.fromkeys([*sources, *size.sources])))


def _raas(tl: Timeline, result: PatientResult, _: object) -> None:
    days = tl.ruleset.raas_persistent_proteinuria_days
    assessable = tl.assessable
    if not assessable or assessable[-1].level is Level.REMISSION:
        return
    start = len(assessable) - 1
    while start > 0 and assessable[start - 1].level is not Level.REMISSION:
        start -= 1
    first, last = assessable[start], assessable[-1]
    if (last.on - first.on).days < days:
        return
    blockers = [e for e in tl.of_class("raas-blocker") if e.start <= last.on and (e.end is None or e.end >= first.on)]
    if blockers:
        return
    _add(
        result,
        "no-raas-blockade",
        first.on + timedelta(days=days),
        f"proteinuria outside remission for {(last.on - first.on).days} days ({first.text} on {first.on} to "
        f"{last.text} on {last.on}) with no ACE inhibitor or ARB recorded (threshold {days} days)",
        [*first.sources, *last.sources],
    )


def _ckd(tl: Timeline, result: PatientResult, _: object) -> None:
    spec = tl.ruleset.ckd
    series = tl.egfr_series()
    unused = tl.unused_egfr()
    if unused:
        earliest, equation = unused[0]
        result.notes.append(
            f"{len(unused)} reported eGFR value(s) not used because the equation does not fit the patient's age "
            f"(first: {earliest.value:.0f} by {equation} on {earliest.on}, {earliest.source}); eGFR is taken as "
            "bedside Schwartz from creatinine and height under 18 and CKD-EPI 2021 from 18"
        )
    if len(series) < 2:
        return
    baseline = series[0]
    floor = baseline[1] * (1 - spec.fall_fraction)
    criteria = (
        (lambda v: v < spec.egfr_below, lambda v: f"below {spec.egfr_below:g}"),
        (
            lambda v: v <= floor,
            lambda v: (
                f"{1 - v / baseline[1]:.0%} below the baseline {baseline[1]:.0f} ({baseline[3]}) of {baseline[0]}"
            ),
        ),
    )
    for low, words in criteria:
        run: list[tuple[date, float, tuple[str, ...], str]] = []
        for point in series:
            if not low(point[1]):
                run = []
                continue
            run.append(point)
            first, last = run[0], run[-1]
            if (last[0] - first[0]).days >= spec.persistence_days:
                _add(
                    result,
                    "ckd-progression",
                    last[0],
                    f"eGFR {first[1]:.0f} ({first[3]}) on {first[0]} and {last[1]:.0f} ({last[3]}, "
                    f"{gfr_category(last[1])}) on {last[0]}, {words(last[1])}, with every value in between as low, "
                    f"for at least {spec.persistence_days} days",
                    [*baseline[2], *first[2], *last[2]],
                )
                return


def _monogenic(tl: Timeline, result: PatientResult, _: object) -> None:
    wanted = set(tl.ruleset.monogenic_gene_concepts)
    for g in tl.facts.genetics:
        if g.on <= tl.as_of and g.pathogenic and g.gene_concepts & wanted:
            _add(
                result,
                "monogenic-disease",
                g.on,
                f"pathogenic variant in {', '.join(g.genes)} (podocyte gene) reported on {g.on}: immunosuppression "
                "is unlikely to help",
                [g.source],
            )
            return


def _steroid_intolerance(tl: Timeline, result: PatientResult, _: object) -> None:
    contraindications = set(tl.ruleset.intolerance.contraindications)
    fraction = tl.ruleset.steroid.high_dose_fraction
    for condition in tl.conditions:
        hits = condition.concepts & contraindications
        if not hits:
            continue
        for e in tl.glucocorticoids():
            day = max(e.start, condition.onset or e.start)
            if not (e.covers(day) and condition.active_on(day)):
                continue
            dose = tl.daily_dose(e, day, "mg/d", prednisone_equivalent=True)
            if dose is None or not tl.share_of_standard_steroid(dose.value, day, fraction):
                continue
            standard = tl.standard_steroid_dose(day)
            words = f"the standard {standard.value:.0f} mg/day" if standard else "the standard dose's cap"
            _add(
                result,
                "steroid-intolerance",
                day,
                f"{tl.terminology.drug_name(e.drug)} {dose.value:.0f} mg/day (at least {fraction:.0%} of {words}) "
                f"given on {day} while {', '.join(sorted(hits)).replace('-', ' ')} was active ({condition.source})",
                [condition.source, *dose.sources, *(standard.sources if standard else ())],
                implicated=[e.source],
            )
            return


def _thromboembolism(tl: Timeline, result: PatientResult, _: object) -> None:
    """An active venous thromboembolism Condition with onset on or after the first nephrotic evidence."""
    if not tl.episodes:
        return
    first = tl.episodes[0].start
    wanted = set(tl.ruleset.thromboembolism_concepts)
    for condition in tl.conditions:
        onset = condition.onset
        if not condition.concepts & wanted or onset is None or not first <= onset <= tl.as_of:
            continue
        if not condition.active_on(onset):
            continue
        _add(
            result,
            "thromboembolism",
            onset,
            f"venous thromboembolism from {onset} ({condition.source}), {(onset - first).days} days after the "
            f"first nephrotic evidence of {first}",
            [condition.source, *tl.episodes[0].start_sources],
        )


def _serious_infection(tl: Timeline, result: PatientResult, _: object) -> None:
    """An active serious infection while on an immunosuppressant or prednis(ol)one at the rule set's dose per kg,
    or within its days after either stopped; the drugs current then are implicated."""
    spec = tl.ruleset.serious_infection
    wanted = set(spec.concepts)
    grace = timedelta(days=spec.days_after)
    for condition in tl.conditions:
        onset = condition.onset
        hits = condition.concepts & wanted
        if not hits or onset is None or onset > tl.as_of or not condition.active_on(onset):
            continue
        words: list[str] = []
        implicated: list[str] = []
        evidence: list[str] = [condition.source]
        for e in tl.exposures:
            last = e.end or tl.as_of
            if not e.start <= onset <= last + grace:
                continue
            when = "while on" if onset <= last else f"{(onset - last).days} days after stopping"
            name = tl.terminology.drug_name(e.drug)
            if e.drug_class in spec.immunosuppressant_classes:
                words.append(f"{when} {name} (from {e.start})")
            elif e.drug_class == "glucocorticoid":
                dose = tl.daily_dose(e, min(onset, last), "mg/kg/d", prednisone_equivalent=True)
                if dose is None or dose.value < spec.prednisolone_mg_per_kg_day:
                    continue
                words.append(
                    f"{when} {name} {dose.value:.2f} mg/kg/day prednisone-equivalent (at least "
                    f"{spec.prednisolone_mg_per_kg_day:g})"
                )
                evidence += dose.sources
            else:
                continue
            implicated.append(e.source)
        if not words:
            continue
        names = ", ".join(sorted(hits)).replace("-", " ")
        _add(
            result,
            "serious-infection",
            onset,
            f"{names} from {onset} ({condition.source}) {'; '.join(dict.fromkeys(words))} (window: on the drug or "
            f"within {spec.days_after} days after)",
            [*evidence, *implicated],
            implicated=implicated,
        )


# -- complications (RULES.md §7) -----------------------------------------------------------------


def _current_drugs(
    tl: Timeline, days: Sequence[date], classes: Sequence[str], drugs: Sequence[str] = ()
) -> list[DrugExposure]:
    """The exposures of these classes or drugs that cover any of `days`."""
    return [
        e for e in tl.exposures if (e.drug_class in classes or e.drug in drugs) and any(e.covers(day) for day in days)
    ]


def _while_on(tl: Timeline, exposures: Sequence[DrugExposure]) -> str:
    if not exposures:
        return ""
    return f" while on {tl.terminology.drug_names(dict.fromkeys(e.drug for e in exposures))}"


class _BloodPressureDay:
    """One day's office blood pressure: the mean of its systolic and of its diastolic readings."""

    def __init__(self, on: date, readings: list[Measurement]) -> None:
        self.on = on
        self.readings = readings
        systolic = [m.value for m in readings if m.concept == "bp-systolic"]
        diastolic = [m.value for m in readings if m.concept == "bp-diastolic"]
        self.systolic = fmean(systolic) if systolic else None
        self.diastolic = fmean(diastolic) if diastolic else None

    @property
    def text(self) -> str:
        shown = "/".join("-" if v is None else f"{v:.0f}" for v in (self.systolic, self.diastolic))
        return f"{shown} mm[Hg] on {self.on}"

    def any_reading_meets(self, limit: BloodPressureLimit) -> bool:
        return any(
            limit.met_by(m.value, None) if m.concept == "bp-systolic" else limit.met_by(None, m.value)
            for m in self.readings
        )


def _persistent(days: list[_BloodPressureDay], count: int, window: int) -> list[_BloodPressureDay] | None:
    """The first `count` days whose first and last lie at most `window` days apart (earliest completed), or None."""
    for last in range(count - 1, len(days)):
        first = last - count + 1
        if (days[last].on - days[first].on).days <= window:
            return days[first : last + 1]
    return None


def _percentile(n: int) -> str:
    """5 -> "5th", 3 -> "3rd": a height-percentile column as the tables name it."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class _ChildLimits:
    """A child's stage limits on one day (AAP 2017: the 95th percentile for age, sex and height, or the fixed
    limits where lower), and how they were found, in words."""

    def __init__(self, spec: Hypertension, age: int, sex: str | None, height: Measurement | None) -> None:
        table = spec.child_percentiles
        self.spec, self.age, self.sex, self.height = spec, age, sex, height
        sexes: tuple[Sex, ...] = ("male",) if sex == "male" else ("female",) if sex == "female" else ("male", "female")
        cm = None if height is None else height.value
        # every age judged is in the table (checked when the rule set is loaded)
        self.columns = [c for c in (table.column(s, age, cm) for s in sexes) if c is not None]
        self.p95 = BloodPressureLimit(
            systolic=min(c.p95.systolic for c in self.columns), diastolic=min(c.p95.diastolic for c in self.columns)
        )
        self.stage1 = spec.child_stage1(self.p95)
        self.stage2 = spec.child_stage2(self.p95)
        self.sources = () if height is None else (height.source,)

    def words(self, stage: int) -> str:
        """E.g. "at or above 112/73 mm[Hg], the 95th percentile for a 7-year-old boy of 122 cm measured 2023-02-20:
        25th height percentile column, 121.4 cm, AAP 2017 Table 4"."""
        spec = self.spec
        if stage == 2:
            limit, raw, fixed = self.stage2, spec.child_plus(self.p95), spec.stage2
            what = f"the 95th percentile + {spec.child_stage2_above_95th:g} mm[Hg]"
        else:
            limit, raw, fixed = self.stage1, self.p95, spec.stage1
            what = "the 95th percentile"
        limit_words = (
            f"at or above {limit}, {what}"
            if limit == raw
            else f"at or above {limit}, the lower of {fixed} and {what} ({raw})"
        )
        who = {"male": "boy", "female": "girl"}.get(self.sex or "", "child of unknown sex")
        if self.height is None:
            size = f"with no height within {spec.child_height_within_days} days of the reading"
        else:
            size = f"of {self.height.value:g} cm measured {self.height.on}"
        columns = [
            f"{_percentile(c.percentile)} height percentile column, {c.height_cm:g} cm, {c.cited_as}"
            for c in self.columns
        ]
        if len(columns) == 1:
            where = columns[0]
        else:
            where = "the lower of the boys' and the girls' values: " + "; ".join(
                f"{words}: 95th percentile {c.p95}" for words, c in zip(columns, self.columns, strict=True)
            )
        article = "an" if self.age in (8, 11, 18) or 80 <= self.age <= 89 else "a"  # as the number is spoken
        return f"{limit_words} for {article} {self.age}-year-old {who} {size}: {where}"


def _grouped(days: list[tuple[str, str]]) -> list[str]:
    """Days with the words of their limit, the words said once after each run of days that share them."""
    out: list[str] = []
    for i, (text, words) in enumerate(days):
        last_of_run = i + 1 == len(days) or days[i + 1][1] != words
        out.append(f"{text} ({words})" if last_of_run else text)
    return out


def _hypertension(tl: Timeline, result: PatientResult, _: object) -> None:
    """Office BP by stage, from 13 y against fixed limits, 1-12 y against the 95th percentile for age, sex and
    height (AAP 2017), with persistence."""
    spec = tl.ruleset.hypertension
    birth = tl.facts.birth_date
    if spec is None or birth is None:
        return
    by_day: dict[date, list[Measurement]] = {}
    for concept in ("bp-systolic", "bp-diastolic"):
        for m in tl.measurements.get(concept, []):
            by_day.setdefault(m.on, []).append(m)
    levels: dict[int, list[_BloodPressureDay]] = {1: [], 2: [], 3: []}
    child: dict[date, _ChildLimits] = {}  # a child's day: its limits from the percentile table
    for on in sorted(by_day):
        age = age_years(birth, on)
        if age < spec.min_age_years:
            continue
        bp = _BloodPressureDay(on, by_day[on])
        if age < spec.adult_limits_from_years:
            height = tl.nearest("height", on, spec.child_height_within_days)
            own = child[on] = _ChildLimits(spec, completed_years(birth, on), tl.facts.sex, height)
            stage1, stage2 = own.stage1, own.stage2
        else:
            stage1, stage2 = spec.stage1, spec.stage2
        level = (
            3
            if bp.any_reading_meets(spec.urgent)
            else 2
            if stage2.met_by(bp.systolic, bp.diastolic)
            else 1
            if stage1.met_by(bp.systolic, bp.diastolic)
            else 0
        )
        for n in range(1, level + 1):
            levels[n].append(bp)
    met: tuple[list[_BloodPressureDay], str, int] | None = None
    if levels[3]:
        met = levels[3][:1], "high", 3
    else:
        run = _persistent(levels[2], spec.stage2_days, spec.stage2_window_days)
        if run is not None:
            met = run, "moderate", 2
        else:
            run = _persistent(levels[1], spec.stage1_days, spec.stage1_window_days)
            if run is not None:
                met = run, "low", 1
    if met is None:
        return
    days, severity, stage = met
    head = {3: "urgent blood pressure", 2: "stage 2 hypertension", 1: "stage 1 hypertension"}[stage]
    fixed = {2: spec.stage2, 1: spec.stage1}.get(stage)
    persistence = {
        2: f"on {spec.stage2_days} days within {spec.stage2_window_days} days",
        1: f"on {spec.stage1_days} days within {spec.stage1_window_days} days",
    }.get(stage, "")
    evidence = [m.source for d in days for m in d.readings]
    texts = [d.text for d in days]
    children = any(d.on in child for d in days)
    if fixed is None:
        rule = f"a reading at or above {spec.urgent} (urgent)"
    elif children:
        adult_words = f"aged {spec.adult_limits_from_years:g} or over: at or above {fixed}"
        texts = _grouped([(d.text, child[d.on].words(stage) if d.on in child else adult_words) for d in days])
        rule = f"at or above the stage {stage} limit {persistence}"
        evidence += [s for d in days if d.on in child for s in child[d.on].sources]
    else:
        rule = f"at or above {fixed} {persistence}"
    if children:
        plus = f"{spec.child_stage2_above_95th:g} mm[Hg]"
        limits = (
            f"AAP 2017, under {spec.adult_limits_from_years:g} years: stage 1 = the 95th percentile for age, sex and "
            f"height, or {spec.stage1} where lower; stage 2 = the 95th percentile + {plus}, or {spec.stage2} where lower"
        )
    else:
        limits = f"stage 1 {spec.stage1}, stage 2 {spec.stage2}, AAP 2017 / ACC-AHA 2017"
    implicated = _current_drugs(tl, [d.on for d in days], ("calcineurin-inhibitor", "glucocorticoid"))
    _add(
        result,
        "hypertension",
        days[-1].on,
        f"{head}: {'; '.join(texts)} ({rule}; {limits}){_while_on(tl, implicated)}",
        evidence,
        severity=severity,
        implicated=[e.source for e in implicated],
    )


def _acute_kidney_injury(tl: Timeline, result: PatientResult, _: object) -> None:
    """KDIGO 2012 AKI by creatinine against the NHS England baseline (RV1, else RV2); one finding per episode."""
    spec = tl.ruleset.acute_kidney_injury
    if spec is None:
        return
    values = tl.measurements.get("creatinine", [])
    days = [m.on for m in values]
    egfr: dict[date, tuple[float, str, tuple[str, ...]]] | None = None  # worked out when first needed
    birth = tl.facts.birth_date
    episode: list[tuple[Measurement, int, str, list[str]]] = []
    for m in values:
        earlier = values[bisect_left(days, m.on - timedelta(days=spec.rv2_to_days)) : bisect_left(days, m.on)]
        rv1 = [p for p in earlier if (m.on - p.on).days <= spec.rv1_days]
        rv2 = [p for p in earlier if spec.rv2_from_days <= (m.on - p.on).days <= spec.rv2_to_days]
        words = ""
        baseline: float | None = None
        sources: list[str] = []
        if rv1:
            low = min(rv1, key=lambda p: p.value)
            baseline, sources = low.value, [low.source]
            words = f"RV1, the lowest value in the {spec.rv1_days} days before: {low.value:.0f} umol/L on {low.on}"
        elif rv2:
            baseline, sources = median(p.value for p in rv2), [p.source for p in rv2]
            words = (
                f"RV2, the median of {len(rv2)} value(s) {spec.rv2_from_days}-{spec.rv2_to_days} days before: "
                f"{baseline:.0f} umol/L (no value in the {spec.rv1_days} days before)"
            )
        ratio = m.value / baseline if baseline else None
        recent = [p for p in earlier if (m.on - p.on).days <= spec.absolute_rise_days]
        lowest_recent = min(recent, key=lambda p: p.value) if recent else None
        rise = m.value - lowest_recent.value if lowest_recent is not None else None
        by_ratio = ratio is not None and ratio >= spec.ratio_stage1
        by_rise = rise is not None and rise >= spec.absolute_rise_umol_l
        if not (by_ratio or by_rise):
            if episode and (m.on - episode[-1][0].on).days > spec.rv1_days:
                _aki_finding(tl, result, episode)
                episode = []
            continue
        if episode and (m.on - episode[-1][0].on).days > spec.rv1_days:
            _aki_finding(tl, result, episode)
            episode = []
        parts = []
        if by_ratio and ratio is not None:
            parts.append(f"{ratio:.1f} x the baseline ({words})")
        if by_rise and rise is not None and lowest_recent is not None:
            parts.append(
                f"{rise:.1f} umol/L above {lowest_recent.value:.0f} umol/L of {lowest_recent.on} (within "
                f"{spec.absolute_rise_days} days; limit {spec.absolute_rise_umol_l:g})"
            )
            sources.append(lowest_recent.source)
        stage = 1
        if ratio is not None and ratio >= spec.ratio_stage3:
            stage = 3
        elif ratio is not None and ratio >= spec.ratio_stage2:
            stage = 2
        if m.value >= spec.stage3_creatinine_umol_l:
            stage = 3
            parts.append(f"at or above {spec.stage3_creatinine_umol_l:g} umol/L after an acute rise")
        if birth is not None and age_years(birth, m.on) < spec.child_below_years and egfr is None:
            egfr = {on: (value, equation, sources) for on, value, sources, equation in tl.egfr_series()}
        kidney = egfr.get(m.on) if egfr is not None else None
        if (
            kidney is not None
            and birth is not None
            and age_years(birth, m.on) < spec.child_below_years
            and kidney[0] < spec.stage3_child_egfr_below
        ):
            stage = 3
            parts.append(f"eGFR {kidney[0]:.0f} ({kidney[1]}) below {spec.stage3_child_egfr_below:g} under 18")
            sources.extend(kidney[2])
        episode.append((m, stage, f"creatinine {m.value:.0f} umol/L on {m.on} is " + " and ".join(parts), sources))
    if episode:
        _aki_finding(tl, result, episode)


def _aki_finding(tl: Timeline, result: PatientResult, episode: list[tuple[Measurement, int, str, list[str]]]) -> None:
    first = episode[0]
    peak = max(episode, key=lambda e: (e[1], e[0].value))
    stage = peak[1]
    # dialysis begun during the episode (or within its days after the last value) is stage 3 (KDIGO 2012)
    until = episode[-1][0].on + timedelta(days=tl.ruleset.acute_kidney_injury.rv1_days)  # type: ignore[union-attr]
    dialysis = next((d for d in tl.procedures("dialysis") if first[0].on <= d.start <= until), None)
    if dialysis is not None:
        stage = 3
    words = f"acute kidney injury (KDIGO stage {stage}): {first[2]}"
    if peak is not first:
        words += f"; at its peak {peak[2]}"
    if dialysis is not None:
        words += f"; dialysis started on {dialysis.start} ({dialysis.source})"
    implicated = _current_drugs(tl, [e[0].on for e in episode], ("calcineurin-inhibitor",))
    _add(
        result,
        "acute-kidney-injury",
        first[0].on,
        words + _while_on(tl, implicated),
        [s for e in (first, peak) for s in (*e[3], e[0].source)] + ([dialysis.source] if dialysis else []),
        severity="moderate" if stage == 1 else "high",
        implicated=[e.source for e in implicated],
    )


def _drug_induced_hyperglycaemia(tl: Timeline, result: PatientResult, _: object) -> None:
    """A glucose or HbA1c at or above the diagnostic threshold of its kind and unit, taken on a glucocorticoid
    or tacrolimus; one finding, dated the first such value."""
    spec = tl.ruleset.hyperglycaemia
    if spec is None:
        return
    kinds: tuple[tuple[str, list[Threshold], str], ...] = (
        ("glucose-fasting", spec.fasting_glucose, "fasting plasma glucose"),
        ("glucose", spec.random_glucose, "plasma glucose (fasting not stated)"),
        ("hba1c", spec.hba1c, "HbA1c"),
    )
    hits: list[tuple[Measurement, str, list[DrugExposure]]] = []
    for concept, thresholds, label in kinds:
        for m in tl.measurements.get(concept, []):
            threshold = next((t for t in thresholds if t.unit == m.unit), None)
            if threshold is None or not threshold.met_by(m.value):
                continue
            on = _current_drugs(tl, [m.on], spec.drug_classes, spec.drugs)
            if on:
                hits.append((m, f"{label} {m.value:g} {unit_text(m.unit)} on {m.on} ({threshold})", on))
    if not hits:
        return
    hits.sort(key=lambda h: (h[0].on, h[0].source))
    first = hits[0]
    more = f"; {len(hits)} such values on treatment in all" if len(hits) > 1 else ""
    implicated = [e.source for h in hits for e in h[2]]
    _add(
        result,
        "drug-induced-hyperglycaemia",
        first[0].on,
        f"{first[1]}{_while_on(tl, first[2])}{more}",
        [*(h[0].source for h in hits), *implicated],
        implicated=implicated,
    )
