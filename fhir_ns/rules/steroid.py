"""Steroid response of one episode: was the prednis(ol)one trial adequate, and did the disease remit in time?"""

from __future__ import annotations

from datetime import date, timedelta
from enum import Enum

from msgspec import Struct

from fhir_ns.ruleset import unit_text
from fhir_ns.timeline.timeline import Dose, DrugExposure, Episode, Level, Reading, Remission, Timeline


class Response(Enum):
    SENSITIVE = "sensitive"
    LATE = "late responder"
    PENDING_CONFIRMATION = "pending confirmation"
    RESISTANT = "resistant"
    IN_PROGRESS = "trial in progress"
    INADEQUATE = "inadequate trial"
    UNDECIDED = "undecided"
    NO_TRIAL = "no trial"


class TrialOutcome(Struct, frozen=True, gc=False):
    """What a steroid trial showed (a Struct, like the timeline's values: one or more per patient)."""

    response: Response
    since: date | None
    reason: str
    evidence: tuple[str, ...]
    course: DrugExposure | None = None
    dose_basis: str | None = None  # "per m2" / "per kg" when the dose was judged against body size
    due: date | None = None  # when a pending outcome will be decided (the first evaluation date its window is closed)


def evaluate_trial(tl: Timeline, episode: Episode, initial: bool) -> TrialOutcome:
    """Judge the steroid trial that treated `episode` against the rule set's definitions."""
    trial = tl.ruleset.steroid.trial
    lookback = episode.start - timedelta(days=trial.start_lookback_days)
    stop = episode.remission.on if episode.remission else tl.as_of
    course = next(
        (
            e
            for e in tl.steroid_courses()
            if (lookback <= e.start <= stop and not e.alternate_day) or (initial and e.covers(episode.start))
        ),
        None,
    )
    if course is None:
        return TrialOutcome(
            Response.NO_TRIAL,
            None,
            f"no daily prednis(ol)one course starting on or after {lookback} (episode from {episode.start})",
            episode.start_sources,
        )
    t0 = course.start
    drug = tl.terminology.drug_name(course.drug)
    assess = t0 + timedelta(days=trial.assessment_day)
    week = _weeks(trial.assessment_day)
    remission = episode.remission if episode.remission and episode.remission.on >= t0 else None
    evidence = (*episode.start_sources, course.source)

    if remission and remission.on <= assess:
        return TrialOutcome(
            Response.SENSITIVE,
            remission.on,
            f"complete remission on {remission.on}, day {(remission.on - t0).days} of the "
            f"{drug} course started {t0} (within {week}): {remission.text}",
            (*evidence, *remission.sources),
            course,
        )
    if trial.response == "any":
        for reading in tl.readings_between(t0 + timedelta(days=1), min(assess, tl.as_of)):
            partial, words, sources = tl.partial_remission(reading, episode)
            if partial:
                return TrialOutcome(
                    Response.SENSITIVE,
                    reading.on,
                    f"partial remission on {reading.on}, day {(reading.on - t0).days} of the "
                    f"{drug} course started {t0} (within {week}): {words}",
                    (*evidence, *sources),
                    course,
                )
    low, high = trial.assessment_window
    if tl.as_of < assess:
        return TrialOutcome(
            Response.IN_PROGRESS,
            t0,
            f"{drug} course started {t0}, no {'complete ' if trial.response == 'complete' else ''}remission "
            f"by the evaluation date {tl.as_of}; the {week} "
            f"response is decided on {assess} (day {trial.assessment_day}) from the proteinuria of days "
            f"{low}-{high} of the course",
            evidence,
            course,
            due=assess,
        )

    adequacy = _adequacy(tl, course, t0)
    if adequacy.response is not None:
        return TrialOutcome(
            adequacy.response, assess, adequacy.reason, (*evidence, *adequacy.sources), course, adequacy.basis
        )

    window = tl.readings_between(t0 + timedelta(days=low), t0 + timedelta(days=high))
    before = [r for r in window if r.on <= assess]
    status = before[-1] if before else (window[0] if window else None)
    if status is None and tl.as_of < t0 + timedelta(days=high):
        return TrialOutcome(
            Response.IN_PROGRESS,
            t0,
            f"{drug} course started {t0}, {adequacy.reason}; no proteinuria value yet between day {low} and "
            f"day {high} ({t0 + timedelta(days=low)} to {t0 + timedelta(days=high)}): the {week} response waits "
            f"for one until {t0 + timedelta(days=high)}",
            (*evidence, *adequacy.sources),
            course,
            due=t0 + timedelta(days=high),
        )
    if status is None:
        return TrialOutcome(
            Response.UNDECIDED,
            assess,
            f"no proteinuria value between day {low} and day {high} of the {drug} course "
            f"started {t0} ({t0 + timedelta(days=low)} to {t0 + timedelta(days=high)})",
            evidence,
            course,
        )
    base = f"{drug} course started {t0}, {adequacy.reason}; at {week} (day {(status.on - t0).days}) {status.text}"
    evidence = (*evidence, *adequacy.sources, *status.sources)
    if status.level is Level.REMISSION and remission and remission.on <= t0 + timedelta(days=high):
        return TrialOutcome(
            Response.SENSITIVE,
            remission.on,
            f"complete remission documented on {remission.on} (day {(remission.on - t0).days}, within "
            f"the {week} assessment window): {remission.text}",
            (*evidence, *remission.sources),
            course,
        )
    if status.level is Level.NEPHROTIC:
        return TrialOutcome(Response.RESISTANT, assess, f"no remission: {base}", evidence, course)

    partial, words, sources = tl.partial_remission(status, episode)
    if partial is None:
        return TrialOutcome(Response.UNDECIDED, assess, f"{base}; {words}", evidence, course)
    if trial.response == "any":
        if partial:
            return TrialOutcome(
                Response.SENSITIVE, status.on, f"partial remission: {base}; {words}", (*evidence, *sources), course
            )
        return TrialOutcome(Response.RESISTANT, assess, f"no remission: {base}; {words}", evidence, course)
    if not partial or trial.confirmation_until_day is None or not initial:
        detail = f"; {words}" if words and not partial else ""
        return TrialOutcome(Response.RESISTANT, assess, f"no complete remission: {base}{detail}", evidence, course)
    return _confirmation(tl, course, status, remission, f"partial remission at {week}: {words}", (*evidence, *sources))


class _Adequacy(Struct, frozen=True, gc=False):
    response: Response | None  # None: adequate
    reason: str
    sources: tuple[str, ...]
    basis: str | None = None


def _adequacy(tl: Timeline, course: DrugExposure, t0: date) -> _Adequacy:
    rs = tl.ruleset.steroid
    days = rs.trial.adequacy_days or rs.trial.assessment_day
    courses = tl.steroid_courses()
    mean, sources = tl.mean_daily_dose(courses, t0, days, prednisone_equivalent=True)
    if mean is None:
        return _Adequacy(
            Response.UNDECIDED,
            f"{tl.unknown_dose(courses, sources[0], t0)}, so the trial's adequacy is unknown",
            sources,
        )
    judged = _against_standard(tl, mean, t0, days, sources)
    ranged = tl.dose_ranges_in(courses, t0, days)
    if not ranged or judged.response is not Response.INADEQUATE:
        return judged  # the low end of a range decides when it is adequate
    most, _ = tl.mean_daily_dose(courses, t0, days, prednisone_equivalent=True, high=True)
    if most is None or _against_standard(tl, most, t0, days, ()).response is Response.INADEQUATE:
        return judged  # even the high end is below: under-dosed either way
    written = ", ".join(
        f"{tl.terminology.drug_name(e.drug)} {e.daily_dose:g}-{e.daily_dose_high:g} {e.dose_basis}/day from {e.start}"
        for e in ranged
    )
    return _Adequacy(
        Response.UNDECIDED,
        f"dose given as a range ({written}): mean {mean:.0f}-{most:.0f} mg/day over {days} days, below the "
        f"adequate dose at the low end and above it at the high end, so adequacy cannot be shown "
        f"({judged.reason})",
        (*judged.sources, *(e.source for e in ranged)),
        judged.basis,
    )


def _against_standard(tl: Timeline, mean: float, t0: date, days: int, sources: tuple[str, ...]) -> _Adequacy:
    """A mean daily prednisone-equivalent dose over the first `days` of a trial against the standard dose."""
    rs = tl.ruleset.steroid
    needed_fraction = rs.adequate_fraction
    cap = rs.standard_daily.max_mg
    if cap is not None and mean >= needed_fraction * cap:
        return _Adequacy(
            None,
            f"mean {mean:.0f} mg/day over {days} days (standard-dose: at least "
            f"{needed_fraction:.0%} of the {cap:g} mg/day cap)",
            sources,
        )
    standard = tl.standard_steroid_dose(t0)
    if standard is None:
        return _Adequacy(
            Response.UNDECIDED,
            f"mean {mean:.0f} mg/day over {days} days, and no weight/height within "
            f"{tl.ruleset.anthropometry_max_age_days} days before {t0} to compare it with the standard dose",
            sources,
        )
    share = mean / standard.value
    words = f"mean {mean:.0f} mg/day over {days} days = {share:.0%} of the standard {standard.value:.0f} {unit_text(standard.unit)}"
    basis = "per m2" if "mg/m2" in standard.unit else "per kg"
    if share < needed_fraction:
        return _Adequacy(
            Response.INADEQUATE,
            f"{words}, below the {needed_fraction:.0%} an adequate trial needs",
            (*sources, *standard.sources),
            basis,
        )
    return _Adequacy(None, words, (*sources, *standard.sources), basis)


def _confirmation(
    tl: Timeline,
    course: DrugExposure,
    status: Reading,
    remission: Remission | None,
    partial_words: str,
    evidence: tuple[str, ...],
) -> TrialOutcome:
    trial = tl.ruleset.steroid.trial
    assert trial.confirmation_until_day is not None
    t0 = course.start
    assess = t0 + timedelta(days=trial.assessment_day)
    end = t0 + timedelta(days=trial.confirmation_until_day)
    period = f"weeks {_weeks(trial.assessment_day, bare=True)}-{_weeks(trial.confirmation_until_day, bare=True)}"
    if remission is not None and remission.on <= end:
        return TrialOutcome(
            Response.LATE,
            remission.on,
            f"{partial_words}; complete remission on {remission.on} during the confirmation period "
            f"({period}): {remission.text}",
            (*evidence, *remission.sources),
            course,
        )
    if tl.as_of < end:
        return TrialOutcome(
            Response.PENDING_CONFIRMATION,
            assess,
            f"{partial_words}; the confirmation period ({period}) runs until {end}",
            evidence,
            course,
            due=end,
        )
    confirming = tl.readings_between(assess + timedelta(days=1), end)
    if not confirming:
        return TrialOutcome(
            Response.UNDECIDED,
            end,
            f"{partial_words}; no proteinuria value during the confirmation period ({assess} to {end})",
            evidence,
            course,
        )
    last = confirming[-1]
    return TrialOutcome(
        Response.RESISTANT,
        end,
        f"{partial_words}; no complete remission by the end of the confirmation period ({end}): "
        f"{last.text} on {last.on}",
        (*evidence, *last.sources),
        course,
    )


def _weeks(days: int, bare: bool = False) -> str:
    n = f"{days // 7}" if days % 7 == 0 else f"{days / 7:.1f}"
    return n if bare else f"week {n}"


__all__ = ["Dose", "Response", "TrialOutcome", "evaluate_trial"]
