"""Classification of a patient's course (RULES.md §3): a history of categories, each with its date and evidence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from fhir_ns.rules.result import Classification, PatientResult
from fhir_ns.rules.steroid import Response, TrialOutcome, evaluate_trial
from fhir_ns.ruleset import BodyDose, FrequentRelapseCriterion
from fhir_ns.timeline.model import ConditionFact
from fhir_ns.timeline.timeline import DrugCourse, DrugExposure, Episode, Level, Relapse, Timeline

REFRACTORY = ("srns-initial", "srns-secondary", "cni-resistant", "mdr-srns", "sdns", "frns")
HISTOLOGY = {
    "histology-fsgs": "FSGS",
    "histology-membranous": "membranous nephropathy",
    "histology-c1q": "C1q nephropathy",
    "histology-mpgn": "MPGN",
}
PSEUDO_TRIGGERS = {"infection": "an active infection", "non-adherence": "documented non-adherence"}


def classify(tl: Timeline, result: PatientResult) -> dict[str, TrialOutcome]:
    """Add every category the timeline meets to `result`; returns the steroid trial outcomes by episode start."""
    add = _Adder(result)
    outcomes: dict[str, TrialOutcome] = {}
    if not tl.episodes:
        add.insufficient(
            tl.as_of,
            f"no nephrotic-range proteinuria and no nephrotic syndrome Condition on record up to {tl.as_of}",
            (),
        )
        _steroid_intolerance(tl, add)
        return outcomes
    initial = tl.episodes[0]
    _secondary_cause(tl, add)
    if _onset_age(tl, add):
        result.notes.append(
            "congenital nephrotic syndrome: no steroid-response category is assigned (steroids are not its treatment)"
        )
        _steroid_intolerance(tl, add)
        result.classifications.sort(key=lambda c: (c.since, c.code))
        return outcomes
    outcome = evaluate_trial(tl, initial, initial=True)
    outcomes[str(initial.start)] = outcome
    _initial_category(outcome, add)
    sensitive = outcome.response in (Response.SENSITIVE, Response.LATE)
    if sensitive:
        _relapses(tl, outcomes, add)
    # relapses after any remission count here, a CNI-induced one in a steroid-resistant child included (RULES.md §9)
    on_cni = _relapsing_on_cni(tl, tl.relapses)
    if on_cni is not None:
        add("relapsing-on-cni", *on_cni)
    _cni_response(tl, add)
    _multidrug(tl, add)
    _steroid_intolerance(tl, add)
    _refractory_notes(tl, result)
    result.classifications.sort(key=lambda c: (c.since, c.code))
    return outcomes


class _Adder:
    def __init__(self, result: PatientResult) -> None:
        self.result = result

    def __call__(
        self, code: str, since: date, reason: str, evidence: Sequence[str], revisit_on: date | None = None
    ) -> None:
        """Record a category once (its first date); insufficient-data and response-pending reasons of one date
        are joined (one DetectedIssue each), a pending one decided on the earliest of their days."""
        if revisit_on is not None:
            self.result.revisit(revisit_on)
        items = self.result.classifications
        for i, old in enumerate(items):
            if old.code == code and code in JOINED and old.since == since:
                days = [d for d in (old.revisit_on, revisit_on) if d is not None]
                items[i] = Classification(
                    code,
                    since,
                    f"{old.reason}; {reason}",
                    tuple(dict.fromkeys([*old.evidence, *evidence])),
                    min(days) if days else None,
                )
                return
        if code not in JOINED and self.result.has(code):
            return
        items.append(Classification(code, since, reason, tuple(dict.fromkeys(evidence)), revisit_on))

    def insufficient(self, since: date, reason: str, evidence: Sequence[str]) -> None:
        self("insufficient-data", since, reason, evidence)

    def pending(self, since: date, reason: str, evidence: Sequence[str], decided_on: date) -> None:
        """An assessment whose window is still open at the evaluation date (RULES.md §11): decided on `decided_on`."""
        self("response-pending", since, reason, evidence, decided_on)


JOINED = ("insufficient-data", "response-pending")  # one per date, the reasons joined


INITIAL_CODES = {
    Response.SENSITIVE: "ssns",
    Response.LATE: "ssns-late-responder",
    Response.PENDING_CONFIRMATION: "srns-pending-confirmation",
    Response.RESISTANT: "srns-initial",
}


def _initial_category(outcome: TrialOutcome, add: _Adder) -> None:
    code = INITIAL_CODES.get(outcome.response)
    since = outcome.since or add.result.as_of
    if outcome.response is Response.IN_PROGRESS and outcome.due is not None:
        add.pending(since, f"steroid response pending: {outcome.reason}", outcome.evidence, outcome.due)
    elif code is not None:
        add(code, since, outcome.reason, outcome.evidence, outcome.due)
    elif outcome.response is Response.INADEQUATE:
        add.insufficient(
            since, f"steroid response cannot be judged: the trial was under-dosed ({outcome.reason})", outcome.evidence
        )
    else:
        add.insufficient(since, f"steroid response cannot be judged: {outcome.reason}", outcome.evidence)


def _relapses(tl: Timeline, outcomes: dict[str, TrialOutcome], add: _Adder) -> None:
    rs = tl.ruleset
    relapses = tl.relapses
    for episode in tl.episodes[1:]:
        outcome = evaluate_trial(tl, episode, initial=False)
        outcomes[str(episode.start)] = outcome
        if outcome.response is Response.RESISTANT:
            add(
                "srns-secondary",
                outcome.since or episode.start,
                f"earlier steroid-sensitive; relapse on {episode.start}: {outcome.reason}",
                outcome.evidence,
            )
        elif outcome.response is Response.IN_PROGRESS and outcome.due is not None:
            add.pending(
                outcome.since or episode.start,
                f"steroid response to the relapse of {episode.start} pending (secondary resistance): {outcome.reason}",
                outcome.evidence,
                outcome.due,
            )
    if not relapses:
        return
    first_remission = tl.episodes[0].remission
    assert first_remission is not None
    frequent = _frequent(tl, relapses, first_remission.on)
    if frequent is not None:
        add("frns", *frequent)
    else:
        counted = " and ".join(_most_in_window(relapses, c, first_remission.on) for c in rs.frequent_relapse)
        add(
            "infrequent-relapse",
            relapses[0].on,
            f"{len(relapses)} relapse(s) since the first remission on {first_remission.on}: {counted}: "
            f"{_relapse_list(relapses)}",
            [s for r in relapses for s in r.sources],
        )
    dependent = _dependent(tl, relapses)
    if dependent is not None:
        add("sdns", *dependent)


def _frequent(tl: Timeline, relapses: list[Relapse], first_remission: date) -> tuple[date, str, list[str]] | None:
    best: tuple[date, str, list[str]] | None = None
    for criterion in tl.ruleset.frequent_relapse:
        window = timedelta(days=criterion.window_days)
        if criterion.anchor == "first-remission":
            inside = [r for r in relapses if first_remission < r.on <= first_remission + window]
            hit = inside[: criterion.count] if len(inside) >= criterion.count else None
            where = f"within {_span(criterion.window_days)} of the first remission on {first_remission}"
        else:
            hit = None
            for i in range(len(relapses) - criterion.count + 1):
                group = relapses[i : i + criterion.count]
                if group[-1].on - group[0].on <= window:
                    hit = group
                    break
            where = f"within {_span(criterion.window_days)}"
        if hit and (best is None or hit[-1].on < best[0]):
            best = (
                hit[-1].on,
                f"{len(hit)} relapses {where} (FRNS needs {criterion.count}): {_relapse_list(hit)}",
                [s for r in hit for s in r.sources],
            )
    return best


def _most_in_window(relapses: list[Relapse], criterion: FrequentRelapseCriterion, first_remission: date) -> str:
    """What was counted against one frequent-relapse criterion: "at most 2 in any 12 months (FRNS needs 3)"."""
    window = timedelta(days=criterion.window_days)
    if criterion.anchor == "first-remission":
        found = sum(first_remission < r.on <= first_remission + window for r in relapses)
        counted = f"{found} within {_span(criterion.window_days)} of the first remission"
    else:
        found = max(sum(r.on <= first.on + window for r in relapses[i:]) for i, first in enumerate(relapses))
        counted = f"at most {found} in any {_span(criterion.window_days)}"
    return f"{counted} (FRNS needs {criterion.count})"


def _dependent(tl: Timeline, relapses: list[Relapse]) -> tuple[date, str, list[str]] | None:
    grace = tl.ruleset.steroid.dependence_days_after_stop
    previous: tuple[Relapse, str, str] | None = None
    for relapse in relapses:
        on_steroid = _steroid_at(tl, relapse.on, grace)
        if on_steroid is None:
            previous = None
            continue
        words, source = on_steroid
        if previous is not None:
            first, first_words, first_source = previous
            return (
                relapse.on,
                f"two consecutive relapses on steroid or within {grace} days of stopping: {first.on} ({first_words}) "
                f"and {relapse.on} ({words})",
                [*first.sources, first_source, *relapse.sources, source],
            )
        previous = (relapse, words, source)
    return None


def _steroid_at(tl: Timeline, day: date, grace: int) -> tuple[str, str] | None:
    best: tuple[str, str] | None = None
    for e in tl.steroid_courses():
        if e.start < day and (e.end is None or e.end >= day):
            dosing = "alternate-day dosing" if e.alternate_day else "daily dosing"
            return f"while taking {tl.terminology.drug_name(e.drug)}, {dosing} from {e.start}", e.source
        if e.end is not None and e.end < day and (day - e.end).days <= grace:
            best = (f"{(day - e.end).days} days after stopping {tl.terminology.drug_name(e.drug)} on {e.end}", e.source)
    return best


def _relapsing_on_cni(tl: Timeline, relapses: list[Relapse]) -> tuple[date, str, list[str]] | None:
    """The rule set's number of relapses within its window, each on a CNI course that had run its months."""
    spec = tl.ruleset.relapsing_on_cni
    counted: list[tuple[Relapse, DrugCourse]] = []
    for relapse in relapses:
        course = next(
            (
                c
                for c in tl.cni_courses()
                if any(e.covers(relapse.on) for e in c.exposures)
                and add_months(c.start, spec.months_after_cni_start) <= relapse.on
            ),
            None,
        )
        if course is not None:
            counted.append((relapse, course))
    window = timedelta(days=spec.window_days)
    for i in range(len(counted) - spec.relapses + 1):
        group = counted[i : i + spec.relapses]
        if group[-1][0].on - group[0][0].on > window:
            continue
        words = ", ".join(f"{r.on} (on {tl.terminology.drug_names(c.drugs)} since {c.start})" for r, c in group)
        return (
            group[-1][0].on,
            f"{len(group)} relapses within {_span(spec.window_days)}, each on a calcineurin inhibitor started at "
            f"least {spec.months_after_cni_start} months before: {words}",
            [*(s for r, _ in group for s in r.sources), *(e.source for _, c in group for e in c.exposures)],
        )
    return None


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later (the month's last day when it has no such day)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _onset_age(tl: Timeline, add: _Adder) -> bool:
    """Congenital (onset before the rule set's months of age, or coded so) or infantile nephrotic syndrome;
    True when congenital."""
    spec = tl.ruleset.onset_age
    onset = tl.episodes[0].start
    evidence = list(tl.episodes[0].start_sources)
    coded = next((c for c in tl.conditions if "congenital-nephrotic-syndrome" in c.concepts), None)
    birth = tl.facts.birth_date
    if birth is not None and onset < add_months(birth, spec.congenital_below_months):
        add(
            "congenital-ns",
            onset,
            f"onset on {onset} at {(onset - birth).days} days of age (born {birth}), before "
            f"{spec.congenital_below_months} months",
            [tl.facts.reference, *evidence],
        )
        return True
    if coded is not None:
        add(
            "congenital-ns",
            onset,
            f"congenital nephrotic syndrome on record ({coded.source}); nephrotic syndrome since {onset}",
            [coded.source, *evidence],
        )
        return True
    if birth is not None and onset < add_months(birth, spec.infantile_below_months):
        add(
            "infantile-ns",
            onset,
            f"onset on {onset} at {(onset - birth).days} days of age (born {birth}), from "
            f"{spec.congenital_below_months} to before {spec.infantile_below_months} months",
            [tl.facts.reference, *evidence],
        )
    return False


def _secondary_cause(tl: Timeline, add: _Adder) -> None:
    """A Condition coding a secondary cause, active at some time from the first nephrotic evidence on."""
    onset = tl.episodes[0].start
    for condition, day, names in _active_since_onset(tl, set(tl.ruleset.secondary_causes)):
        add(
            "secondary-ns-suspected",
            day,
            f"{names} on record from {condition.onset or 'an unrecorded date'} ({condition.source}): the nephrotic "
            f"syndrome (since {onset}) may be secondary; treat the cause, specialist review",
            [condition.source, *tl.episodes[0].start_sources],
        )
        return


def cni_adequacy(
    tl: Timeline, exposures: list[DrugExposure], start: date, days: int, min_dose: dict[str, BodyDose] | None = None
) -> tuple[bool | None, str, tuple[str, ...]]:
    """Adequate CNI exposure over a window: the dose at the rule set's minimum, or troughs mostly in range."""
    rs = tl.ruleset.cni
    minimum = min_dose if min_dose is not None else rs.min_dose
    words: list[str] = []
    sources: list[str] = []
    dose_known = False
    for drug in sorted({e.drug for e in exposures}):
        spec = minimum.get(drug)
        if spec is None:
            continue
        mine = [e for e in exposures if e.drug == drug]
        first = max(start, mine[0].start)
        span = max(1, (min(mine[-1].end or tl.as_of, start + timedelta(days=days - 1)) - first).days + 1)
        mean, mean_sources = tl.mean_daily_dose(mine, first, span)
        need = tl.body_dose(spec.mg_per_m2, spec.mg_per_kg, None, first)
        if mean is None:
            words.append(tl.unknown_dose(mine, mean_sources[0], first))
            continue
        if need is None:
            continue
        per = need.unit.split("(")[1].rstrip(")")
        if mean < need.value and tl.dose_ranges_in(mine, first, span):
            most, _ = tl.mean_daily_dose(mine, first, span, high=True)
            if most is not None and most >= need.value:
                words.append(
                    f"{tl.terminology.drug_name(drug)} dose given as a range: mean {mean:.0f}-{most:.0f} mg/day vs minimum "
                    f"{per} = {need.value:.0f} mg/day: adequacy cannot be shown"
                )
                sources += mean_sources
                continue
        dose_known = True
        ok = mean >= need.value
        words.append(
            f"{tl.terminology.drug_name(drug)} mean {mean:.0f} mg/day vs minimum {per} = {need.value:.0f} mg/day"
        )
        sources += [*mean_sources, *need.sources]
        if ok:
            return True, words[-1], tuple(sources)
    levels_in, levels_all, level_sources = 0, 0, []
    end = start + timedelta(days=days)
    for drug in sorted({e.drug for e in exposures}):
        target = rs.target_levels.get(drug)
        if target is None:
            continue
        for m in tl.measurements.get(f"{drug}-level", []):
            if start <= m.on <= end:
                levels_all += 1
                levels_in += int(target.low <= m.value <= target.high)
                level_sources.append(m.source)
    if levels_all:
        share = levels_in / levels_all
        words.append(f"{levels_in} of {levels_all} trough levels within target")
        sources += level_sources
        if share > rs.levels_in_range_fraction:
            return True, "; ".join(words), tuple(sources)
    if not dose_known and not levels_all:
        why = "; ".join(words) if words else "neither the dose per body size nor trough levels are recorded"
        return None, why, tuple(dict.fromkeys([*sources, *(e.source for e in exposures)]))
    return False, "; ".join(words), tuple(sources)


def _cni_response(tl: Timeline, add: _Adder) -> None:
    window = tl.ruleset.cni.response_window_days
    for course in tl.cni_courses():
        if tl.in_remission_on(course.start):
            add.result.notes.append(
                f"CNI course from {course.start} started in remission (steroid-sparing use); CNI response not judged"
            )
            continue
        evidence = [e.source for e in course.exposures]
        episode = next((e for e in reversed(tl.episodes) if e.start <= course.start), None)
        end = course.start + timedelta(days=window)
        response = _first_response(tl, course.start, min(end, tl.as_of), episode)
        if response is not None:
            day, words, sources = response
            add(
                "cni-responsive",
                day,
                f"{tl.terminology.drug_names(course.drugs)} from {course.start}: {words} on {day}, day {(day - course.start).days} "
                f"(within {_span(window)})",
                [*evidence, *sources],
            )
            continue
        if tl.as_of < end:
            add.pending(
                course.start,
                f"CNI response pending: {' and '.join(course.drugs)} from {course.start}, no partial or complete "
                f"remission by the evaluation date {tl.as_of}; the response is decided at {_span(window)}, on {end}",
                evidence,
                end,
            )
            continue
        lasted = ((course.end or tl.as_of) - course.start).days + 1
        if lasted < window:
            add.insufficient(
                end,
                f"{tl.terminology.drug_names(course.drugs)} from {course.start} lasted {lasted} days, less than {_span(window)}, "
                "with no remission: CNI resistance cannot be concluded",
                evidence,
            )
            continue
        adequate, words, sources = cni_adequacy(tl, course.exposures, course.start, window)
        late = tl.readings_between(course.start + timedelta(days=window // 2), end)
        if adequate is None:
            add.insufficient(
                end, f"CNI response cannot be judged for the course from {course.start}: {words}", [*evidence, *sources]
            )
        elif not adequate:
            add.insufficient(
                end,
                f"CNI course from {course.start} was not at adequate dose or level ({words}); "
                "resistance cannot be concluded",
                [*evidence, *sources],
            )
        elif not late:
            add.insufficient(
                end,
                f"no proteinuria value in the second half of the CNI course's first "
                f"{_span(window)} ({course.start + timedelta(days=window // 2)} to {end})",
                evidence,
            )
        else:
            add(
                "cni-resistant",
                end,
                f"no partial or complete remission after {_span(window)} of {tl.terminology.drug_names(course.drugs)} from "
                f"{course.start} at adequate exposure ({words}); latest {late[-1].text} on {late[-1].on}",
                [*evidence, *sources, *late[-1].sources],
            )


def _first_response(
    tl: Timeline, start: date, end: date, episode: Episode | None
) -> tuple[date, str, tuple[str, ...]] | None:
    """First CR or PR in (start, end]."""
    for reading in tl.readings_between(start + timedelta(days=1), end):
        if reading.level is Level.REMISSION:
            return reading.on, f"remission-range {reading.text}", reading.sources
        partial, words, sources = tl.partial_remission(reading, episode)
        if partial:
            return reading.on, f"partial remission ({words})", sources
    return None


def _multidrug(tl: Timeline, add: _Adder) -> None:
    resistant = [c for c in add.result.classifications if c.code in ("srns-initial", "srns-secondary")]
    if not resistant:
        return
    rs = tl.ruleset.multidrug
    sparing = [
        e
        for e in tl.exposures
        if e.drug_class in tl.terminology.steroid_sparing_classes and e.start >= tl.episodes[0].start
    ]
    if not sparing:
        return
    s0 = min(e.start for e in sparing)
    end = s0 + timedelta(days=rs.window_days)
    in_window = [e for e in sparing if e.start <= end]
    if tl.as_of < end:
        # pending only on the way to it: enough classes started and no complete remission yet
        started = sorted({e.drug_class for e in in_window})
        if len(started) >= rs.min_classes and not any(
            r.level is Level.REMISSION for r in tl.readings_between(s0, tl.as_of)
        ):
            add.pending(
                s0,
                f"multidrug resistance pending: {len(started)} classes of steroid-sparing agent from {s0} "
                f"({', '.join(sorted({e.drug for e in in_window}))}) and no complete remission by the evaluation "
                f"date {tl.as_of}; it is decided after {_span(rs.window_days)}, on {end}",
                [e.source for e in in_window],
                end,
            )
        return
    classes: dict[str, list[str]] = {}
    unknown: list[str] = []
    evidence: list[str] = []
    for drug_class in sorted({e.drug_class for e in in_window}):
        mine = [e for e in in_window if e.drug_class == drug_class]
        if drug_class == "calcineurin-inhibitor":
            ok, words, sources = cni_adequacy(tl, mine, s0, rs.window_days, dict(rs.min_dose))
        else:
            ok, words, sources = _standard_dose(tl, mine, rs.min_dose)
        if ok:
            classes[drug_class] = [words]
            evidence += sources
        elif ok is None:
            unknown.append(f"{tl.terminology.class_name(drug_class)} ({words})")
    if len(classes) < rs.min_classes:
        if unknown and len(classes) + len(unknown) >= rs.min_classes:
            add.insufficient(
                end, "multidrug resistance cannot be judged: " + "; ".join(unknown), [e.source for e in in_window]
            )
        return
    remission = next((r for r in tl.readings_between(s0, end) if r.level is Level.REMISSION), None)
    late = tl.readings_between(end - timedelta(days=rs.final_reading_days), end)
    if remission is not None:
        return
    if not late:
        add.insufficient(
            end,
            f"no proteinuria value in the last {rs.final_reading_days} days of the {_span(rs.window_days)} of "
            f"steroid-sparing treatment from {s0}",
            evidence,
        )
        return
    add(
        "mdr-srns",
        end,
        f"no complete remission after {_span(rs.window_days)} of {len(classes)} mechanistically different "
        f"steroid-sparing agents from {s0} ({'; '.join(w for ws in classes.values() for w in ws)}); latest "
        f"{late[-1].text} on {late[-1].on}",
        [*evidence, *late[-1].sources],
    )


def _standard_dose(
    tl: Timeline, exposures: list[DrugExposure], min_dose: dict[str, BodyDose]
) -> tuple[bool | None, str, tuple[str, ...]]:
    drug = exposures[0].drug
    spec = min_dose.get(drug)
    if spec is None:
        return (
            True,
            f"{tl.terminology.drug_name(drug)} given ({len(exposures)} record(s); no minimum dose in the rule set)",
            tuple(e.source for e in exposures),
        )
    first = exposures[0]
    dose = tl.daily_dose(first, first.start, "mg/d")
    need = tl.body_dose(spec.mg_per_m2, spec.mg_per_kg, None, first.start)
    name = tl.terminology.drug_name(drug)
    if dose is None:
        return None, tl.unknown_dose(exposures, first.source, first.start), (first.source,)
    if need is None:
        return None, f"{name} standard dose per body size unknown (no weight/height)", (first.source,)
    ok = dose.value >= need.value
    per = need.unit.split("(")[1].rstrip(")")
    words = f"{name} {dose.value:.0f} mg/day vs minimum {per} = {need.value:.0f} mg/day"
    if not ok and first.dose_range:
        most = tl.daily_dose(first, first.start, "mg/d", high=True)
        if most is not None and most.value >= need.value:
            return (
                None,
                f"{name} dose given as a range {dose.value:.0f}-{most.value:.0f} mg/day vs minimum {per} = "
                f"{need.value:.0f} mg/day: adequacy cannot be shown",
                (*dose.sources, *need.sources),
            )
    return ok, words, (*dose.sources, *need.sources)


def _steroid_intolerance(tl: Timeline, add: _Adder) -> None:
    contraindications = set(tl.ruleset.intolerance.contraindications)
    onset = tl.episodes[0].start if tl.episodes else None
    if onset is None:
        return
    for condition, day, names in _active_since_onset(tl, contraindications):
        add(
            "steroid-intolerant",
            day,
            f"{names} active from {condition.onset or 'an unrecorded date'} ({condition.source}) contraindicates "
            f"high-dose steroid; nephrotic syndrome since {onset}",
            [condition.source, *tl.episodes[0].start_sources],
        )


def _refractory_notes(tl: Timeline, result: PatientResult) -> None:
    result.notes.extend(sentence for sentence, _ in refractory_reading(tl, result.classifications))


def refractory_reading(tl: Timeline, classifications: Sequence[Classification]) -> list[tuple[str, str]]:
    """What the record says of the refractory categories (RULES.md §3), each sentence with its source: a
    histology that makes them true refractory, an active infection or non-adherence that may make them
    pseudo-refractory."""
    refractory = [c for c in classifications if c.code in REFRACTORY]
    if not refractory:
        return []
    out = []
    for concept, name in HISTOLOGY.items():
        for condition in tl.conditions:
            if concept in condition.concepts:
                out.append((f"true refractory: {name} on histology ({condition.source})", condition.source))
    for concept, words in PSEUDO_TRIGGERS.items():
        for condition in tl.conditions:
            if concept in condition.concepts and any(condition.active_on(c.since) for c in refractory):
                out.append(
                    (
                        f"possible pseudo-refractory: {words} ({condition.source}); remove the trigger and re-evaluate",
                        condition.source,
                    )
                )
    return out


def _span(days: int) -> str:
    if days in (182, 183):
        return "6 months"
    if days == 365:
        return "12 months"
    return f"{days} days"


def _relapse_list(relapses: Sequence[Relapse]) -> str:
    return ", ".join(f"{r.on}{' (treated)' if r.treated else ''}" for r in relapses)


def _active_since_onset(tl: Timeline, concepts: set[str]) -> Iterator[tuple[ConditionFact, date, str]]:
    """Conditions coding any of `concepts` and active on a day from the first nephrotic evidence on: each with
    that day (its onset, or the first evidence if it began before) and the concepts met, in words."""
    onset = tl.episodes[0].start
    for condition in tl.conditions:
        hits = condition.concepts & concepts
        day = max(onset, condition.onset or onset)
        if hits and day <= tl.as_of and condition.active_on(day):
            yield condition, day, ", ".join(sorted(hits)).replace("-", " ")
