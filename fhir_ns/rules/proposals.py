"""Care plan proposals that know the record (RULES.md §5, §11).

Which plans a patient's categories call for comes from the rule set (`careplans`); what each activity means
on the record, what rules an activity out and which category supersedes which, from mappings/careplans.yaml.
Here each activity is held against the timeline: a therapy already current is `in-progress`, a biopsy or
genetic result on record is `completed`, each with the sentence and the resources that show it; an activity
a finding or category contraindicates is left out with the reason. Only the plans of the current categories
are `draft`; a plan whose trigger a later category superseded is `revoked`, and the later plan replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from fhir_ns.catalogue import Activity, Contraindication, RecordMatch, careplans, info
from fhir_ns.rules.causes import plan_notes
from fhir_ns.rules.classify import HISTOLOGY
from fhir_ns.rules.result import Classification, Finding, OmittedActivity, PatientResult, Proposal, ProposedActivity
from fhir_ns.timeline.timeline import DrugExposure, Timeline

SUPPORTIVE_CARE = "supportive-care"


def propose(tl: Timeline, result: PatientResult) -> None:
    """Set `result.proposals`: every plan the categories call for, each activity as it stands on the record."""
    catalogue = careplans()
    triggered: list[tuple[str, Classification | None]] = []
    for classification in result.classifications:
        for template_id in result.ruleset.careplans.get(classification.code, []):
            if all(template_id != t for t, _ in triggered):
                triggered.append((template_id, classification))
    if result.conditions or any(c.code != "insufficient-data" for c in result.classifications):
        triggered.append((SUPPORTIVE_CARE, None))
    contraindicated = _contraindications(catalogue.contraindications, result)
    superseded = {
        template_id: _superseding(trigger, catalogue.supersession.get(trigger.code, ()), result.classifications)
        for template_id, trigger in triggered
        if trigger is not None
    }
    proposals = []
    for template_id, trigger in triggered:
        template = catalogue.templates[template_id]
        activities: list[ProposedActivity] = []
        omitted: list[OmittedActivity] = []
        ruled_out: dict[str, list[str]] = {}  # contraindication code -> the activities it left out
        for activity in template.activities:
            blocking = [(ci, item) for ci, item in contraindicated if set(ci.rules_out) & set(activity.involves)]
            if blocking:
                ci, item = blocking[0]
                omitted.append(OmittedActivity(activity.text, _because(ci, item), item.evidence))
                ruled_out.setdefault(ci.code, []).append(activity.text)
            else:
                activities.append(_as_on_record(activity, tl, trigger, result))
        notes = tuple(
            f"Not proposed because of {_words(ci, item)}: {ci.because}. Left out: {' '.join(ruled_out[ci.code])}"
            for ci, item in contraindicated
            if ci.code in ruled_out
        ) + tuple(plan_notes(tl, result, trigger))
        by = superseded.get(template_id)
        replaces = tuple(
            other
            for other, superseding in superseded.items()
            if superseding is not None and trigger is not None and superseding.code == trigger.code
        )
        proposals.append(
            Proposal(
                template_id,
                template.title,
                template.intent,
                trigger,
                "revoked" if by is not None else "draft",
                tuple(activities),
                tuple(omitted),
                notes,
                by,
                replaces,
            )
        )
    result.proposals = proposals


def _contraindications(
    known: Sequence[Contraindication], result: PatientResult
) -> list[tuple[Contraindication, Classification | Finding]]:
    """The contraindications the result meets, each with the (first) classification or finding that meets it."""
    items: list[Classification | Finding] = [*result.classifications, *result.findings]
    out = []
    for ci in known:
        item = next((i for i in items if i.code == ci.code), None)
        if item is not None:
            out.append((ci, item))
    return out


def _words(ci: Contraindication, item: Classification | Finding) -> str:
    return f"{info(ci.code).display.lower()} since {item.since}"


def _because(ci: Contraindication, item: Classification | Finding) -> str:
    return f"left out because of {_words(ci, item)}: {ci.because}"


def _superseding(
    trigger: Classification, later: Sequence[str], classifications: Sequence[Classification]
) -> Classification | None:
    """The first category, met on or after the trigger's date, that supersedes the trigger (None: still current)."""
    found = [c for c in classifications if c.code in later and c.since >= trigger.since]
    return min(found, key=lambda c: (c.since, c.code), default=None)


def _as_on_record(
    activity: Activity, tl: Timeline, trigger: Classification | None, result: PatientResult
) -> ProposedActivity:
    """The activity with its status on the record: completed, in progress, or not started."""
    since = trigger.since if trigger is not None else None
    done = _completed(activity.completed_when, tl, since)
    if done is not None:
        return ProposedActivity(activity.text, activity.source, "completed", *done)
    current = _in_progress(activity.in_progress_when, tl, result)
    if current is not None:
        return ProposedActivity(activity.text, activity.source, "in-progress", *current)
    return ProposedActivity(activity.text, activity.source, "not-started")


def _completed(match: RecordMatch, tl: Timeline, trigger_since: date | None) -> tuple[str, tuple[str, ...]] | None:
    """The sentence and sources showing the activity done (a Condition or genetic result on record), or None."""
    if not match:
        return None
    after = trigger_since if match.since_trigger else None
    words: list[str] = []
    sources: list[str] = []
    wanted = set(match.conditions)
    for condition in tl.conditions:
        hits = sorted(wanted & condition.concepts)
        if not hits or (after is not None and (condition.onset is None or condition.onset < after)):
            continue
        names = ", ".join(HISTOLOGY.get(c, c.removeprefix("histology-").upper()) for c in hits)
        words.append(f"{names} on record" + (f" since {condition.onset}" if condition.onset else ""))
        sources.append(condition.source)
    if match.genetic_result:
        for g in tl.facts.genetics:
            if g.on > tl.as_of or (after is not None and g.on < after):
                continue
            found = f"pathogenic variant in {', '.join(g.genes)}" if g.pathogenic else "no pathogenic variant reported"
            words.append(f"genetic result of {g.on} on record: {found}")
            sources.append(g.source)
    if not words:
        return None
    return "; ".join(words), tuple(dict.fromkeys(sources))


def _in_progress(match: RecordMatch, tl: Timeline, result: PatientResult) -> tuple[str, tuple[str, ...]] | None:
    """The sentence and sources showing the therapy current at the evaluation date, or None. A therapy with a
    recorded end after that date makes the result worth revisiting the day after it ends."""
    if not match:
        return None
    relevant = [e for e in tl.exposures if e.drug_class in match.drug_classes or e.drug in match.drugs]
    words: list[str] = []
    sources: list[str] = []
    for drug in dict.fromkeys(e.drug for e in relevant if e.covers(tl.as_of)):
        course = _current_course([e for e in relevant if e.drug == drug], tl)
        words.append(f"on {drug.replace('-', ' ')} since {course[0].start}")
        sources.extend(e.source for e in course)
        for e in tl.facts.exposures:
            if e.drug == drug and e.end is not None and e.end >= tl.as_of and e.source in sources:
                result.revisit(e.end + timedelta(days=1))
    if not words:
        return None
    return "; ".join(words), tuple(dict.fromkeys(sources))


def _current_course(exposures: list[DrugExposure], tl: Timeline) -> list[DrugExposure]:
    """The exposures of one drug that run into the evaluation date, joined back across gaps no longer than
    the rule set's course gap (a dose change or a late refill does not restart the therapy)."""
    gap = timedelta(days=tl.ruleset.cni.course_gap_days)
    ordered = sorted(exposures, key=lambda e: (e.start, e.source))
    course = [e for e in ordered if e.covers(tl.as_of)]
    start = min(e.start for e in course)
    for e in reversed(ordered):
        if e in course:
            continue
        end = e.end or tl.as_of
        if e.start < start and end + gap >= start:
            course.append(e)
            start = e.start
    return sorted(course, key=lambda e: (e.start, e.source))
