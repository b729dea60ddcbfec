"""Relapse burden and treatment response per patient (RULES.md §9, seed 004's measures), as of the evaluation date.

Everything is read from the timeline, never judged again here: the relapses are the timeline's (after any
remission), complete and partial remission its judgements, doses and body size its arithmetic.

Periods: each steroid-sparing regimen (the drugs taken together) from its start to its stop or the evaluation
date, and the period before the first one (the rule set's months before it, not before the first nephrotic
evidence). A drug of a lasting class (rituximab, cyclophosphamide: single doses or a fixed course) and plasma
exchange count from the first dose to the next start of another therapy, or the evaluation date. A patient never
given a steroid-sparing agent has one period, from the first nephrotic evidence to the evaluation date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fhir_ns.rules.classify import add_months
from fhir_ns.rules.result import Measure, PatientResult
from fhir_ns.terminology import Terminology
from fhir_ns.timeline.timeline import Level, Relapse, Timeline

DAYS_PER_YEAR = 365.25  # a period's years = its days (both ends included) / 365.25
# The order of a regimen's drugs in its name (issue 12): calcineurin inhibitors, antimetabolites, the other
# classes, then procedures; by name within each.
_CLASS_ORDER = {"calcineurin-inhibitor": 0, "antimetabolite": 1}
_OTHER, _PROCEDURE = 2, 3
_DAY = timedelta(days=1)


def regimen_words(terminology: Terminology, therapy: str | None) -> str:
    """A regimen as a clinician writes it: "tacrolimus+mycophenolic-acid" -> "tacrolimus + mycophenolic acid"."""
    if therapy is None:
        return "no steroid-sparing agent"
    procedures = terminology.procedures
    return " + ".join(
        procedures[name].display if name in procedures else terminology.drug_name(name) for name in therapy.split("+")
    )


@dataclass(frozen=True, slots=True)
class TherapyPeriod:
    """A stretch of the course under one steroid-sparing regimen (None: before any, or never given one)."""

    therapy: str | None
    start: date
    end: date  # inclusive
    sources: tuple[str, ...]  # what the period rests on: the therapy's records, or the first nephrotic evidence
    name: str = ""  # the regimen in words

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def years(self) -> float:
        return self.days / DAYS_PER_YEAR

    @property
    def words(self) -> str:
        on = f"on {self.name}" if self.therapy else "without a steroid-sparing agent"
        return f"{on} ({self.start} to {self.end})"


@dataclass(frozen=True, slots=True)
class _Given:
    """One therapy given over days: a drug's course, or a lasting drug or procedure up to the next therapy."""

    name: str
    rank: tuple[int, str]
    start: date
    end: date
    sources: tuple[str, ...]


def measure(tl: Timeline, result: PatientResult) -> None:
    """Add the patient's measures to `result`, and a note for each one the data cannot give."""
    if not tl.episodes:
        return
    periods = therapy_periods(tl)
    relapses = tl.relapses
    for period in periods:
        inside = [r for r in relapses if period.start <= r.on <= period.end]
        _relapse_burden(period, inside, result)
        _minimum_maintenance(tl, period, result)
        if period.therapy is not None:
            _time_to_remission(tl, period, result)
            _time_to_first_relapse(period, inside, result)
    current = periods[-1].therapy if periods and periods[-1].end == tl.as_of else None
    _state(tl, current, result)


def therapy_periods(tl: Timeline) -> list[TherapyPeriod]:
    """The periods of the course from the first nephrotic evidence: the one before any steroid-sparing therapy,
    then one per regimen (a change of drugs starts a new period; days on none belong to no period)."""
    onset = tl.episodes[0].start
    given = [
        g if g.start >= onset else _Given(g.name, g.rank, onset, g.end, g.sources) for g in _given(tl) if g.end >= onset
    ]
    periods: list[TherapyPeriod] = []
    bounds = sorted({g.start for g in given} | {g.end + _DAY for g in given})
    for first, after in zip(bounds, bounds[1:], strict=False):
        active = sorted((g for g in given if g.start <= first <= g.end), key=lambda g: g.rank)
        if not active:
            continue
        therapy = "+".join(dict.fromkeys(g.name for g in active))
        sources = tuple(dict.fromkeys(s for g in active for s in g.sources))
        last = periods[-1] if periods else None
        if last is not None and last.therapy == therapy and last.end + _DAY == first:
            sources = tuple(dict.fromkeys(last.sources + sources))
            periods[-1] = TherapyPeriod(therapy, last.start, after - _DAY, sources, last.name)
        else:
            periods.append(TherapyPeriod(therapy, first, after - _DAY, sources, regimen_words(tl.terminology, therapy)))
    onset_sources = tl.episodes[0].start_sources
    if not periods:
        return [TherapyPeriod(None, onset, tl.as_of, onset_sources)]
    first_start = periods[0].start
    if first_start > onset:
        start = max(onset, add_months(first_start, -tl.ruleset.measures.before_first_therapy_months))
        periods.insert(
            0,
            TherapyPeriod(None, start, first_start - _DAY, tuple(dict.fromkeys(onset_sources + periods[0].sources))),
        )
    return periods


def _given(tl: Timeline) -> list[_Given]:
    """Every steroid-sparing therapy given by the evaluation date, as days on it."""
    sparing = tl.terminology.steroid_sparing_classes
    lasting_classes = set(tl.ruleset.measures.lasting_classes)
    given: list[_Given] = []
    lasting: dict[str, list[tuple[date, str]]] = {}  # drug or procedure -> (day given, source)
    ranks: dict[str, tuple[int, str]] = {}
    for drug in sorted({e.drug for e in tl.exposures if e.drug_class in sparing}):
        exposures = [e for e in tl.exposures if e.drug == drug]
        drug_class = exposures[0].drug_class
        ranks[drug] = (_CLASS_ORDER.get(drug_class, _OTHER), drug)
        for e in exposures:
            if drug_class in lasting_classes or e.single_administration:
                lasting.setdefault(drug, []).append((e.start, e.source))
        if drug_class not in lasting_classes:
            for course in tl.courses_of(drug):
                sources = tuple(e.source for e in course.exposures)
                given.append(_Given(drug, ranks[drug], course.start, course.end or tl.as_of, sources))
    for p in tl.therapy_procedures():
        ranks[p.concept] = (_PROCEDURE, p.concept)
        lasting.setdefault(p.concept, []).append((p.start, p.source))
    starts = sorted({(g.start, g.name) for g in given} | {(d, n) for n, days in lasting.items() for d, _ in days})
    for name, doses in lasting.items():
        doses.sort()
        i = 0
        while i < len(doses):
            first = doses[i][0]
            following = next((d for d, other in starts if other != name and d > first), None)
            end = tl.as_of if following is None else following - _DAY
            group = [source for d, source in doses[i:] if d <= end]
            i += len(group)
            given.append(_Given(name, ranks[name], first, end, tuple(dict.fromkeys(group))))
    return given


def _relapse_burden(period: TherapyPeriod, relapses: list[Relapse], result: PatientResult) -> None:
    n = len(relapses)
    evidence = tuple(dict.fromkeys([*(s for r in relapses for s in r.sources), *period.sources]))
    on = f": on {', '.join(str(r.on) for r in relapses)}" if relapses else ""
    result.measures.append(
        Measure(
            "relapse-count",
            period.start,
            period.end,
            period.therapy,
            n,
            "1",
            evidence,
            f"{n} relapse(s) {period.words}{on}",
        )
    )
    rate = n / period.years
    result.measures.append(
        Measure(
            "relapse-rate",
            period.start,
            period.end,
            period.therapy,
            rate,
            "/a",
            evidence,
            f"{n} relapse(s) in {period.years:.2f} years ({period.days} days) {period.words}: {rate:.2f} per year",
        )
    )


@dataclass(frozen=True, slots=True)
class _Stretch:
    """Days with one prednis(ol)one dose and one remission state."""

    start: date
    end: date
    in_remission: bool
    mg_per_kg: float | None  # prednisone equivalent on alternate days (a daily dose counts double); None: unknown
    sources: tuple[str, ...]
    unknown: str = ""  # why the dose per kg cannot be computed


def _minimum_maintenance(tl: Timeline, period: TherapyPeriod, result: PatientResult) -> None:
    """The lowest prednis(ol)one dose held the rule set's days in remission (no relapse) within the period."""
    window = tl.ruleset.measures.min_maintenance_days
    what = f"minimum maintenance prednisolone {period.words}"
    if period.days < window:
        result.notes.append(
            f"{what} not measured: the period lasts {period.days} days, less than the {window} days a dose must be held"
        )
        return
    stretches = _stretches(tl, period)
    # days in remission whose dose per kg is unknown may hide a lower dose: only none at all is sure to be lowest
    unknown = next((s for s in stretches if s.in_remission and s.mg_per_kg is None), None)
    levels = sorted({s.mg_per_kg for s in stretches if s.in_remission and s.mg_per_kg is not None})
    for level in levels:
        if unknown is not None and level > 0:
            break
        run = _longest_run(stretches, level)
        if run and (run[-1].end - run[0].start).days + 1 >= window:
            days = (run[-1].end - run[0].start).days + 1
            held = "no prednisolone" if level == 0 else f"{level:.2f} mg/kg on alternate days"
            result.measures.append(
                Measure(
                    "minimum-maintenance-prednisolone",
                    period.start,
                    period.end,
                    period.therapy,
                    level,
                    "mg/kg",
                    tuple(dict.fromkeys([*(src for s in run for src in s.sources), *period.sources])),
                    f"lowest prednisolone dose keeping remission {period.words}: {held} (prednisone equivalent, a "
                    f"daily dose counted double), held {days} consecutive days in remission from {run[0].start} to "
                    f"{run[-1].end} (at least {window})",
                )
            )
            return
    if unknown is not None:
        result.notes.append(f"{what} not measured: {unknown.unknown} ({unknown.start} to {unknown.end})")
    else:
        result.notes.append(f"{what} not measured: no {window} consecutive days in remission without relapse")


def _longest_run(stretches: list[_Stretch], level: float) -> list[_Stretch]:
    """The longest run of consecutive stretches in remission at a dose no higher than `level`."""
    best, best_days, first = (0, 0), -1, None
    for i, s in enumerate(stretches):
        if s.in_remission and s.mg_per_kg is not None and s.mg_per_kg <= level:
            first = i if first is None else first
            days = (s.end - stretches[first].start).days
            if days > best_days:
                best, best_days = (first, i + 1), days
        else:
            first = None
    return stretches[best[0] : best[1]]


def _stretches(tl: Timeline, period: TherapyPeriod) -> list[_Stretch]:
    """The period cut where the steroid dose, the weight in use or the remission state may change; the dose is
    worked out only for the days in remission (the others never count)."""
    last = period.end
    courses = [e for e in tl.steroid_courses() if e.start <= last and (e.end is None or e.end >= period.start)]
    cuts = {period.start, period.end + _DAY}
    for e in courses:
        cuts |= {e.start, (e.end or tl.as_of) + _DAY}
    if courses:
        anthropometry = timedelta(days=tl.ruleset.anthropometry_max_age_days)
        weighed = [w.on for w in tl.measurements.get("weight", ()) if period.start - anthropometry <= w.on <= last]
        cuts.update(weighed)
        cuts.update(on + anthropometry + _DAY for on in weighed)
    for episode in tl.episodes:
        cuts.add(episode.start)
        if episode.remission is not None:
            cuts.add(episode.remission.on)
    days = sorted(d for d in cuts if period.start <= d <= last + _DAY)
    out = []
    for first, after in zip(days, days[1:], strict=False):
        if not tl.in_remission_on(first):
            out.append(_Stretch(first, after - _DAY, False, None, ()))
            continue
        mg, unknown = 0.0, ""
        sources: list[str] = []
        for e in courses:
            if e.covers(first):
                dose = tl.daily_dose(e, first, "mg/d", prednisone_equivalent=True)
                if dose is None:
                    unknown = tl.unknown_dose(courses, e.source, first)
                    break
                mg += dose.value
                sources += dose.sources
        per_kg: float | None = None
        if unknown:
            pass  # a dose of the day could not be had: `unknown` says why
        elif mg == 0:
            per_kg = 0.0
        elif (weight := tl.body_size(first)).weight_kg is None:
            unknown = (
                f"no weight within {tl.ruleset.anthropometry_max_age_days} days before {first} to express the "
                f"prednisolone dose per kg"
            )
        else:
            per_kg = 2 * mg / weight.weight_kg
            sources += weight.sources
        out.append(_Stretch(first, after - _DAY, True, per_kg, tuple(dict.fromkeys(sources)), unknown))
    return out


def _time_to_remission(tl: Timeline, period: TherapyPeriod, result: PatientResult) -> None:
    """Days from the therapy's start to complete remission; not measured when it started in remission."""
    if tl.in_remission_on(period.start):
        result.notes.append(f"time to remission {period.words} not measured: the therapy started in complete remission")
        return
    remission = next(
        (e.remission for e in tl.episodes if e.remission is not None and period.start < e.remission.on <= period.end),
        None,
    )
    if remission is None:
        _time_to_event("time-to-remission", period, result, "no complete remission", None)
        return
    _time_to_event(
        "time-to-remission", period, result, "complete remission", (remission.on, remission.sources, remission.text)
    )


def _time_to_first_relapse(period: TherapyPeriod, relapses: list[Relapse], result: PatientResult) -> None:
    """Days from the therapy's start to its first relapse, censored at the period's end."""
    first = (relapses[0].on, relapses[0].sources, "") if relapses else None
    _time_to_event("time-to-first-relapse", period, result, "first relapse" if relapses else "no relapse", first)


def _time_to_event(
    code: str,
    period: TherapyPeriod,
    result: PatientResult,
    what: str,
    event: tuple[date, tuple[str, ...], str] | None,
) -> None:
    """Days from the period's start to the event (its day, sources and words), or censored at the period's end."""
    if event is None:
        days = (period.end - period.start).days
        evidence = period.sources
        reason = f"{what} in {days} days {period.words}: censored at {period.end}"
    else:
        day, sources, words = event
        days = (day - period.start).days
        evidence = tuple(dict.fromkeys([*sources, *period.sources]))
        reason = f"{what} on {day}, {days} days after the start of {period.name} on {period.start}"
        reason += f": {words}" if words else ""
    result.measures.append(
        Measure(code, period.start, period.end, period.therapy, days, "d", evidence, reason, censored=event is None)
    )


def _state(tl: Timeline, therapy: str | None, result: PatientResult) -> None:
    """Complete or partial remission, no remission, or kidney failure, at the evaluation date."""
    as_of = tl.as_of

    def add(value: str, reason: str, evidence: tuple[str, ...]) -> None:
        result.measures.append(
            Measure("state-at-evaluation", as_of, as_of, therapy, value, None, evidence, f"{reason} (as of {as_of})")
        )

    procedure = tl.kidney_failure_procedure()
    if procedure is not None:
        name = tl.terminology.procedures[procedure.concept].display
        add("kidney-failure", f"kidney failure: {name} on record from {procedure.start}", (procedure.source,))
        return
    limit = tl.ruleset.measures.kidney_failure_egfr_below
    egfr = tl.egfr_series()
    if egfr and egfr[-1][1] < limit:
        day, value, sources, equation = egfr[-1]
        add(
            "kidney-failure",
            f"kidney failure: latest eGFR {value:.0f} mL/min/1.73 m2 on {day} ({equation}), below {limit:g}",
            sources,
        )
        return
    episode = tl.episodes[-1]
    if tl.in_remission_on(as_of):
        assert episode.remission is not None
        remission = episode.remission
        add(
            "complete-remission",
            f"complete remission since {remission.on} with no relapse since: {remission.text}",
            remission.sources,
        )
        return
    latest = tl.readings_between(episode.start, as_of)
    if not latest:
        result.notes.append(f"state at {as_of} not measured: no assessable proteinuria since {episode.start}")
        return
    reading = latest[-1]
    if reading.level is Level.NEPHROTIC:
        add("no-remission", f"no remission: latest {reading.text} on {reading.on}", reading.sources)
        return
    if reading.level is Level.REMISSION:
        result.notes.append(
            f"state at {as_of} not measured: the latest {reading.text} on {reading.on} is in the remission range but "
            "complete remission is not confirmed by the rule set"
        )
        return
    partial, words, sources = tl.partial_remission(reading, episode)
    if partial is None:
        result.notes.append(f"state at {as_of} not measured: partial remission cannot be judged: {words}")
    elif partial:
        add("partial-remission", f"partial remission: {words} on {reading.on}", sources)
    else:
        why = f" ({words})" if words else ""
        add("no-remission", f"no remission: latest {reading.text} on {reading.on}{why}", reading.sources)
