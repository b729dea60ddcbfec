"""What is known only once the findings are made (RULES.md §3, §8): CNI intolerance, and the words that
carry the causes to the clinician: a secondary cause, true or pseudo-refractoriness, monogenic disease.

`review` runs after `findings.find`: `cni-intolerant` rests on toxicity findings (nephrotoxicity, and
acute kidney injury or stage 2 hypertension when those findings are made), and the DetectedIssue of each
refractory category says what the record shows about it, not only the classify JSON notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta

from fhir_ns.rules.classify import REFRACTORY, refractory_reading
from fhir_ns.rules.result import Classification, Finding, PatientResult
from fhir_ns.timeline.timeline import DrugCourse, Timeline

SEVERITY_ORDER = ("low", "moderate", "high")
# categories that are not about the response to treatment, so carry no "assumes primary disease"
NOT_RESPONSE = frozenset({"secondary-ns-suspected", "congenital-ns", "infantile-ns", "insufficient-data"})


def review(tl: Timeline, result: PatientResult) -> None:
    """Add `cni-intolerant`; say in each category what a secondary cause, the histology, an infection or
    non-adherence, and a monogenic finding mean for it."""
    _cni_intolerant(tl, result)
    monogenic = [f for f in result.findings if f.code == "monogenic-disease"]
    secondary = result.first("secondary-ns-suspected")
    updated = []
    for c in result.classifications:
        extra: list[str] = []
        evidence: list[str] = []
        if c.code in REFRACTORY:
            for sentence, source in refractory_reading(tl, [c]):  # a trigger counts when active on c's date
                extra.append(sentence)
                evidence.append(source)
            for f in monogenic:
                extra.append(f"monogenic disease: {f.reason}")
                evidence += f.evidence
        if secondary is not None and c.code not in NOT_RESPONSE:
            extra.append(
                f"assumes primary nephrotic syndrome, but a secondary cause is suspected since {secondary.since}"
            )
            evidence += secondary.evidence[:1]
        if extra:
            c = replace(
                c, reason=f"{c.reason}; {'; '.join(extra)}", evidence=tuple(dict.fromkeys([*c.evidence, *evidence]))
            )
        updated.append(c)
    result.classifications = sorted(updated, key=lambda c: (c.since, c.code))


def plan_notes(tl: Timeline, result: PatientResult, trigger: Classification | None) -> list[str]:
    """The notes a plan carries for its trigger: true or pseudo-refractory, monogenic disease."""
    if trigger is None or trigger.code not in REFRACTORY:
        return []
    notes = [s[0].upper() + s[1:] + "." for s, _ in refractory_reading(tl, [trigger])]
    notes += [
        f"Monogenic disease since {f.since}: {f.reason}." for f in result.findings if f.code == "monogenic-disease"
    ]
    return notes


def _cni_intolerant(tl: Timeline, result: PatientResult) -> None:
    """A CNI course stopped for toxicity: an adverse-effect status reason, or stopped within the rule set's days
    after a toxicity finding that implicates it (or, naming no drug, falls inside the course); or an allergy or
    intolerance on record naming a CNI the patient is not taking at the evaluation date."""
    if _cni_allergy(tl, result):
        return
    spec = tl.ruleset.cni_intolerance
    for course in tl.cni_courses():
        stop = course.end
        if stop is None or stop > tl.as_of:
            continue
        drugs = tl.terminology.drug_names(course.drugs)
        flagged = [e for e in course.exposures if e.stopped_for_adverse_effect]
        if flagged:
            _add(
                result,
                stop,
                f"{drugs} from {course.start} stopped on {stop} for an adverse effect (status reason of "
                f"{', '.join(e.source for e in flagged)})",
                [e.source for e in course.exposures],
            )
            return
        finding = _toxicity_before(
            result.findings, course, stop, spec.stopped_within_days, spec.min_severity, spec.toxicity_findings
        )
        if finding is not None:
            _add(
                result,
                stop,
                f"{drugs} from {course.start} stopped on {stop}, {(stop - finding.since).days} days after "
                f"{finding.code.replace('-', ' ')} of {finding.since} (within {spec.stopped_within_days} days): "
                f"{finding.reason}",
                [*(e.source for e in course.exposures), *finding.evidence],
            )
            return


def _cni_allergy(tl: Timeline, result: PatientResult) -> bool:
    """`cni-intolerant` from an active AllergyIntolerance naming a CNI, dated by its onset or recorded date (an
    undated one by the first nephrotic evidence). One whose CNI is being taken at the evaluation date is not
    counted: the record contradicts itself, and a note says so."""
    for allergy in tl.facts.intolerances:
        if allergy.drug_class != "calcineurin-inhibitor" or not allergy.active:
            continue
        if allergy.on is not None and allergy.on > tl.as_of:
            continue
        name = tl.terminology.drug_name(allergy.drug)
        taking = [e for e in tl.of_class("calcineurin-inhibitor") if e.drug == allergy.drug and e.covers(tl.as_of)]
        if taking:
            result.notes.append(
                f"{allergy.source} records an allergy or intolerance to {name}, yet {name} is taken on "
                f"{tl.as_of} ({taking[0].source}): not counted as CNI intolerance"
            )
            continue
        if allergy.on is not None:
            since, dated = allergy.on, f"recorded from {allergy.on}"
        elif tl.episodes:
            since, dated = tl.episodes[0].start, "undated, so counted from the first nephrotic evidence"
        else:
            continue
        stopped = [e.source for e in tl.of_class("calcineurin-inhibitor") if e.drug == allergy.drug]
        _add(
            result,
            since,
            f"allergy or intolerance to {name} on record ({allergy.source}, {dated})",
            [
                allergy.source,
                *stopped,
            ],
        )
        return True
    return False


def _toxicity_before(
    findings: Sequence[Finding],
    course: DrugCourse,
    stop: date,
    days: int,
    min_severity: Mapping[str, str],
    codes: Sequence[str],
) -> Finding | None:
    sources = {e.source for e in course.exposures}
    for f in findings:
        if f.code not in codes or not stop - timedelta(days=days) <= f.since <= stop or f.since < course.start:
            continue
        least = min_severity.get(f.code)
        if least is not None and SEVERITY_ORDER.index(f.severity) < SEVERITY_ORDER.index(least):
            continue
        if f.implicated and not sources & set(f.implicated):
            continue
        return f
    return None


def _add(result: PatientResult, since: date, reason: str, evidence: list[str]) -> None:
    if not result.has("cni-intolerant"):
        result.classifications.append(Classification("cni-intolerant", since, reason, tuple(dict.fromkeys(evidence))))
