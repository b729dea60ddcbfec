"""Safety and monitoring findings (RULES.md §4), each with its evidence and one sentence with the numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from fhir_ns.catalogue import info
from fhir_ns.rules.result import Finding, PatientResult
from fhir_ns.rules.steroid import Response, TrialOutcome
from fhir_ns.ruleset import unit_text
from fhir_ns.timeline.formulas import gfr_category
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
