"""read -> facts per patient -> timeline -> rules: the one direction every command follows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from fhir_ns.fhir.extract import FactCollector, PatientInput
from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import read_entries
from fhir_ns.rules import PatientResult, evaluate
from fhir_ns.ruleset import RuleSet, load_rulesets
from fhir_ns.terminology import Terminology, load_terminology


@dataclass(slots=True)
class Run:
    """What one run read, concluded and refused."""

    results: list[PatientResult] = field(default_factory=list)
    refused: list[PatientInput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def all_problems(self) -> list[Problem]:
        """Problems of the run and of every patient, refused or not."""
        out = list(self.problems)
        for patient in self.refused:
            out.extend(patient.problems)
        return out

    @property
    def resources_read(self) -> int:
        return sum(self.counts.values())

    @property
    def has_errors(self) -> bool:
        return bool(self.refused) or any(p.severity in ("error", "fatal") for p in self.problems)


@dataclass(frozen=True, slots=True)
class Config:
    terminology: Terminology
    rulesets: dict[str, RuleSet]

    @classmethod
    def load(cls, mapping_dirs: tuple[Path, ...] = ()) -> Config:
        return cls(load_terminology(mapping_dirs), load_rulesets(mapping_dirs))


def collect(inputs: Iterable[str], config: Config) -> tuple[list[PatientInput], list[Problem], dict[str, int]]:
    """Read every input and group the facts by patient."""
    problems: list[Problem] = []
    collector = FactCollector(config.terminology, problems)
    collector.add_all(read_entries(inputs, problems))
    return collector.patients(), problems, collector.counts


def run(inputs: Iterable[str], config: Config, as_of: date, ruleset_id: str | None = None) -> Run:
    """Classify every patient whose input is sound; refuse (and report) the others."""
    patients, problems, counts = collect(inputs, config)
    out = Run(problems=problems, counts=counts)
    for patient in patients:
        if patient.refused:
            out.refused.append(patient)
            continue
        result = evaluate(patient.facts, config.rulesets, config.terminology, as_of, ruleset_id)
        out.results.append(result)
        out.problems.extend(patient.problems)
    return out
