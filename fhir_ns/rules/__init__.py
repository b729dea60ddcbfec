"""Classification and findings for one patient under one rule set (chosen by age at onset unless named)."""

from __future__ import annotations

from datetime import date

from fhir_ns.errors import ConfigError
from fhir_ns.rules.causes import review
from fhir_ns.rules.classify import classify
from fhir_ns.rules.findings import find
from fhir_ns.rules.measures import measure
from fhir_ns.rules.proposals import propose
from fhir_ns.rules.result import Classification, Finding, Measure, PatientResult
from fhir_ns.ruleset import RuleSet
from fhir_ns.terminology import Terminology
from fhir_ns.timeline.formulas import age_years
from fhir_ns.timeline.model import PatientFacts
from fhir_ns.timeline.timeline import Timeline

__all__ = [
    "Classification",
    "Finding",
    "Measure",
    "PatientResult",
    "build_timeline",
    "choose_ruleset",
    "evaluate",
    "evaluate_with_timeline",
]


def default_ruleset(rulesets: dict[str, RuleSet], population: str) -> RuleSet:
    for ruleset in rulesets.values():
        if ruleset.default_for == population:
            return ruleset
    raise ConfigError(f"no rule set is marked default_for: {population}")


def choose_ruleset(
    facts: PatientFacts, rulesets: dict[str, RuleSet], terminology: Terminology, as_of: date
) -> tuple[RuleSet, str, str | None]:
    """(rule set, why it was chosen, reason it cannot be chosen or None): by age at the first nephrotic evidence."""
    ruleset, why, blocker, _ = _choose(facts, rulesets, terminology, as_of)
    return ruleset, why, blocker


def _choose(
    facts: PatientFacts, rulesets: dict[str, RuleSet], terminology: Terminology, as_of: date
) -> tuple[RuleSet, str, str | None, Timeline | None]:
    """`choose_ruleset`, with the timeline under the chosen rule set when finding the onset built it."""
    child, adult = default_ruleset(rulesets, "child"), default_ruleset(rulesets, "adult")
    if facts.birth_date is None:
        missing = "no birth date on record" if facts.on_record else f"no Patient resource for {facts.reference}"
        why = f"{missing} and no rule set named, so the age at onset is unknown"
        return child, "no birth date" if facts.on_record else "no Patient resource", why, None
    onset = None
    built: dict[str, Timeline] = {}
    for candidate in (child, adult):
        timeline = built[candidate.id] = Timeline.build(facts, candidate, terminology, as_of)
        if timeline.episodes:
            onset = timeline.episodes[0].start
            break
    # the age that parts the two populations: where the child rule set ends, or else where the adult one begins
    limit = child.population.onset_age_max_years
    limit = adult.population.onset_age_min_years if limit is None else limit
    if onset is None:
        age = age_years(facts.birth_date, as_of)
        chosen = child if age < limit else adult
        return chosen, f"no onset on record; age {age:.1f} years at {as_of}", None, built.get(chosen.id)
    age = age_years(facts.birth_date, onset)
    chosen = child if age < limit else adult
    return chosen, f"age {age:.1f} years at onset ({onset})", None, built.get(chosen.id)


def build_timeline(
    facts: PatientFacts,
    rulesets: dict[str, RuleSet],
    terminology: Terminology,
    as_of: date,
    ruleset_id: str | None = None,
) -> tuple[RuleSet, str, str | None, Timeline | None]:
    """The rule set (named, or chosen by age at onset), why, what stops it being applied (or None), and
    the patient's timeline under it (None when stopped)."""
    if ruleset_id is not None:
        if ruleset_id not in rulesets:
            raise ConfigError(f"unknown rule set {ruleset_id!r}; known: {', '.join(sorted(rulesets))}")
        ruleset, why, blocker, timeline = rulesets[ruleset_id], "named by the caller", None, None
    else:
        ruleset, why, blocker, timeline = _choose(facts, rulesets, terminology, as_of)
    if blocker is None and timeline is None:
        timeline = Timeline.build(facts, ruleset, terminology, as_of)
    return ruleset, why, blocker, timeline


def _doubts(facts: PatientFacts, ruleset: RuleSet, timeline: Timeline | None, as_of: date, named: bool) -> list[str]:
    """What makes this evaluation doubtful though it ran: a named rule set for another population, an
    evaluation date before the patient's birth or before anything on record."""
    out = []
    birth = facts.birth_date
    onset = timeline.episodes[0].start if timeline is not None and timeline.episodes else None
    if named and birth is not None and birth <= (onset or as_of):
        age = age_years(birth, onset or as_of)
        low, high = ruleset.population.onset_age_min_years, ruleset.population.onset_age_max_years
        if age < low or (high is not None and age >= high):
            span = f"from {low:g} years" + (f" to below {high:g}" if high is not None else "")
            when = f"at onset ({onset})" if onset else f"on {as_of} (no onset on record)"
            out.append(f"rule set {ruleset.id} is for onset {span}; the patient was {age:.1f} years old {when}")
    if birth is not None and as_of < birth:
        out.append(f"the evaluation date {as_of} is before the birth date {birth}: nothing can be evaluated")
    first = _first_day(facts)
    if first is not None and as_of < first:
        out.append(f"the evaluation date {as_of} is before the first data on record ({first}): all of it is ignored")
    return out


def _first_day(facts: PatientFacts) -> date | None:
    """The earliest day of anything on record for the patient."""
    days = [m.on for m in facts.measurements] + [e.start for e in facts.exposures]
    days += [c.onset for c in facts.conditions if c.onset is not None] + [g.on for g in facts.genetics]
    return min(days, default=None)


def _blocked_evidence(facts: PatientFacts, timeline: Timeline) -> tuple[str, ...]:
    """What an answer no rule set could be chosen for rests on: the Patient resource (when there is one) and
    the first nephrotic evidence; never a resource that is not in the input."""
    cited = [facts.reference] if facts.on_record else []
    episodes = timeline.episodes
    if episodes:
        cited += episodes[0].start_sources
    elif not cited:
        cited += sorted(facts.sources)[:1]
    return tuple(cited)


def evaluate(
    facts: PatientFacts,
    rulesets: dict[str, RuleSet],
    terminology: Terminology,
    as_of: date,
    ruleset_id: str | None = None,
) -> PatientResult:
    """Classify one patient, collect the findings, propose care plans and measure the course, as of `as_of`."""
    return evaluate_with_timeline(facts, rulesets, terminology, as_of, ruleset_id)[0]


def evaluate_with_timeline(
    facts: PatientFacts,
    rulesets: dict[str, RuleSet],
    terminology: Terminology,
    as_of: date,
    ruleset_id: str | None = None,
) -> tuple[PatientResult, Timeline]:
    """`evaluate`, with the timeline the result rests on; when no rule set could be chosen, the timeline is the
    one under the default rule set that the result's evidence was taken from."""
    ruleset, why, blocker, timeline = build_timeline(facts, rulesets, terminology, as_of, ruleset_id)
    result = PatientResult(facts.patient_id, facts.reference, ruleset, as_of, why)
    result.warnings = _doubts(facts, ruleset, timeline, as_of, named=ruleset_id is not None)
    if blocker is not None or timeline is None:
        result.ruleset_applied = False
        timeline = Timeline.build(facts, ruleset, terminology, as_of)
        evidence = _blocked_evidence(facts, timeline)
        result.classifications.append(Classification("insufficient-data", as_of, str(blocker), evidence))
        return result, timeline
    result.conditions = tuple(c.source for c in timeline.conditions if "nephrotic-syndrome" in c.concepts)
    trials = classify(timeline, result)
    find(timeline, result, trials)
    review(timeline, result)
    propose(timeline, result)
    measure(timeline, result)
    return result, timeline
