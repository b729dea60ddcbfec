"""Classification and findings for one patient under one rule set (chosen by age at onset unless named)."""

from __future__ import annotations

from datetime import date

from fhir_ns.errors import ConfigError
from fhir_ns.rules.classify import classify
from fhir_ns.rules.findings import find
from fhir_ns.rules.result import Classification, Finding, PatientResult
from fhir_ns.ruleset import RuleSet
from fhir_ns.terminology import Terminology
from fhir_ns.timeline.formulas import age_years
from fhir_ns.timeline.model import PatientFacts
from fhir_ns.timeline.timeline import Timeline

__all__ = ["Classification", "Finding", "PatientResult", "choose_ruleset", "evaluate"]


def default_ruleset(rulesets: dict[str, RuleSet], population: str) -> RuleSet:
    for ruleset in rulesets.values():
        if ruleset.default_for == population:
            return ruleset
    raise ConfigError(f"no rule set is marked default_for: {population}")


def choose_ruleset(
    facts: PatientFacts, rulesets: dict[str, RuleSet], terminology: Terminology, as_of: date
) -> tuple[RuleSet, str, str | None]:
    """(rule set, why it was chosen, reason it cannot be chosen or None): by age at the first nephrotic evidence."""
    child, adult = default_ruleset(rulesets, "child"), default_ruleset(rulesets, "adult")
    if facts.birth_date is None:
        return child, "no birth date", "no birth date on record and no rule set named, so the age at onset is unknown"
    onset = None
    for candidate in (child, adult):
        timeline = Timeline.build(facts, candidate, terminology, as_of)
        if timeline.episodes:
            onset = timeline.episodes[0].start
            break
    if onset is None:
        age = age_years(facts.birth_date, as_of)
        chosen = child if age < (child.population.onset_age_max_years or 18) else adult
        return chosen, f"no onset on record; age {age:.1f} years at {as_of}", None
    age = age_years(facts.birth_date, onset)
    limit = child.population.onset_age_max_years or 18
    chosen = child if age < limit else adult
    return chosen, f"age {age:.1f} years at onset ({onset})", None


def evaluate(
    facts: PatientFacts,
    rulesets: dict[str, RuleSet],
    terminology: Terminology,
    as_of: date,
    ruleset_id: str | None = None,
) -> PatientResult:
    """Classify one patient and collect the findings, as of `as_of`."""
    if ruleset_id is not None:
        if ruleset_id not in rulesets:
            raise ConfigError(f"unknown rule set {ruleset_id!r}; known: {', '.join(sorted(rulesets))}")
        ruleset, why, blocker = rulesets[ruleset_id], "named by the caller", None
    else:
        ruleset, why, blocker = choose_ruleset(facts, rulesets, terminology, as_of)
    result = PatientResult(facts.patient_id, facts.reference, ruleset, as_of, why)
    if blocker is not None:
        result.classifications.append(Classification("insufficient-data", as_of, blocker, (facts.reference,)))
        return result
    timeline = Timeline.build(facts, ruleset, terminology, as_of)
    result.conditions = tuple(c.source for c in timeline.conditions if "nephrotic-syndrome" in c.concepts)
    trials = classify(timeline, result)
    find(timeline, result, trials)
    return result
