"""read -> facts per patient -> timeline -> rules: the one direction every command follows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from fhir_ns.errors import PatientNotFoundError, PatientRefusedError
from fhir_ns.fhir.extract import FactCollector, PatientInput
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import input_of, whole_files
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.progress import NO_PROGRESS, Progress
from fhir_ns.rules import PatientResult, evaluate_with_timeline
from fhir_ns.ruleset import RuleSet, load_rulesets
from fhir_ns.terminology import Terminology, load_terminology
from fhir_ns.timeline.timeline import Timeline

if TYPE_CHECKING:  # the gate (validation) is imported only by the commands that use it
    from fhir_ns.validate.gate import EntryGate

T = TypeVar("T")


@dataclass(slots=True)
class Run:
    """What one run read, concluded and refused."""

    results: list[PatientResult] = field(default_factory=list)  # empty when the results were streamed
    refused: list[PatientInput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0

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


def read_input(
    inputs: Iterable[str],
    config: Config,
    problems: list[Problem],
    gate: EntryGate | None = None,
    spill: SpillLimit | None = None,
    skip_unreadable: bool = False,
    progress: Progress = NO_PROGRESS,
) -> FactCollector:
    """Read every input into a collector; with a gate, each entry passes it first (as a dict)."""
    inputs = list(inputs)
    collector = FactCollector(config.terminology, problems, spill, skip_unreadable)
    collector.inputs = input_of(inputs)
    collector.read(whole_files(inputs), gate, progress=progress.reading if progress.enabled else None)
    return collector


def collect(
    inputs: Iterable[str], config: Config, gate: EntryGate | None = None
) -> tuple[list[PatientInput], list[Problem], dict[str, int]]:
    """Read every input and group the facts by patient; with a gate, each entry passes it first."""
    problems: list[Problem] = []
    collector = read_input(inputs, config, problems, gate)
    return collector.patients(), problems, collector.counts


def stream(
    inputs: Sequence[str],
    config: Config,
    as_of: date,
    out: Run,
    render: Callable[[PatientResult], T],
    ruleset_id: str | None = None,
    gate: EntryGate | None = None,
    jobs: int = 1,
    spill: SpillLimit | None = None,
    skip_unreadable: bool = False,
    progress: Progress = NO_PROGRESS,
) -> Iterator[T]:
    """Each sound patient's result, rendered, in order of patient id, as soon as it is evaluated.

    `out` gathers the counts, problems and refused patients as the stream goes; `jobs` > 1 reads and
    evaluates in that many worker processes (not when reading standard input); `spill` bounds the
    memory the facts take (see RecordStore); `skip_unreadable` evaluates the patients an unreadable
    record may belong to (marked) rather than refusing them; `progress` shows how far it has come.
    """
    doubt = as_of_doubt(as_of, date.today())
    if doubt is not None:
        out.problems.append(doubt)
    if jobs > 1 and "-" not in inputs:  # worker processes cannot read the parent's standard input
        from fhir_ns.parallel import stream_parallel

        def evaluate(patients: Iterable[PatientInput]) -> tuple[list[T], list[PatientInput], list[Problem], int]:
            local = Run()
            outputs = list(evaluate_each(patients, config, as_of, local, render, ruleset_id))
            return outputs, local.refused, local.problems, local.evaluated

        # no progress display with worker processes: a bar drawn while they run has been seen to stall a run
        # on a terminal (intermittently, not understood yet), and a run that never ends is worse than none
        yield from stream_parallel(inputs, config.terminology, evaluate, out, gate, jobs, spill, skip_unreadable)
        return
    collector = read_input(inputs, config, out.problems, gate, spill, skip_unreadable, progress)
    out.counts = collector.counts
    patients = collector.each_patient(progress.evaluating if progress.enabled else None)
    yield from evaluate_each(patients, config, as_of, out, render, ruleset_id, progress)


def evaluate_each(
    patients: Iterable[PatientInput],
    config: Config,
    as_of: date,
    out: Run,
    render: Callable[[PatientResult], T],
    ruleset_id: str | None = None,
    progress: Progress = NO_PROGRESS,
) -> Iterator[T]:
    """Classify every patient whose input is sound; refuse (and report in `out`) the others."""
    for patient in patients:
        progress.evaluated()
        if patient.refused:
            out.refused.append(patient)
            continue
        out.evaluated += 1
        out.problems.extend(patient.problems)
        yield render(evaluate_patient(patient, config, as_of, out, ruleset_id))


def evaluate_patient(
    patient: PatientInput, config: Config, as_of: date, out: Run, ruleset_id: str | None = None
) -> PatientResult:
    """One sound patient's result under one rule set (named, or chosen by age at onset); the doubts about
    the evaluation itself (a rule set for another population, a date before the record) go to `out`."""
    return evaluate_patient_with_timeline(patient, config, as_of, out, ruleset_id)[0]


def evaluate_patient_with_timeline(
    patient: PatientInput, config: Config, as_of: date, out: Run, ruleset_id: str | None = None
) -> tuple[PatientResult, Timeline]:
    """`evaluate_patient`, with the timeline the result rests on (what `explain` prints and draws)."""
    result, timeline = evaluate_with_timeline(patient.facts, config.rulesets, config.terminology, as_of, ruleset_id)
    result.unreadable_skipped = patient.unreadable
    out.problems.extend(_doubt(result, message, ruleset_id) for message in result.warnings)
    return result, timeline


def _doubt(result: PatientResult, message: str, ruleset_id: str | None) -> Problem:
    """A warning about one patient's evaluation, located at the option it comes from."""
    option = f"--ruleset {ruleset_id}" if message.startswith("rule set") else f"--as-of {result.as_of}"
    return Problem(
        "warning", "business-rule", message, Location(option), None, result.patient_reference, result.patient_id
    )


def as_of_doubt(as_of: date, today: date) -> Problem | None:
    """A warning when the evaluation date is in the future: data not yet recorded cannot be judged."""
    if as_of <= today:
        return None
    return Problem(
        "warning",
        "business-rule",
        f"the evaluation date is in the future (today is {today}): windows still open are judged as if closed "
        "with no new data",
        Location(f"--as-of {as_of}"),
    )


def explain_resources(
    resources: Iterable[tuple[str, dict[str, Any]]],
    config: Config,
    patient_id: str,
    as_of: date,
    ruleset_id: str | None = None,
    planned: bool = False,
) -> tuple[Timeline, PatientResult]:
    """`explain_patient` for resources already in memory (each named by where it came from, such as a CDS Hooks
    prefetch key); `planned`: draft MedicationRequests are read as the orders about to be signed."""
    out = Run()
    collector = FactCollector(config.terminology, out.problems, planned=planned)
    for index, (origin, resource) in enumerate(resources):
        collector.add_json(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS), Location(origin, index))
    out.counts = collector.counts
    return one_patient(collector.each_patient(), config, patient_id, as_of, out, ruleset_id)


def run(
    inputs: Iterable[str], config: Config, as_of: date, ruleset_id: str | None = None, gate: EntryGate | None = None
) -> Run:
    """Classify every patient whose input is sound; refuse (and report) the others."""
    out = Run()
    out.results.extend(stream(list(inputs), config, as_of, out, _as_is, ruleset_id, gate))
    return out


def _as_is(result: PatientResult) -> PatientResult:
    return result


def explain_patient(
    inputs: Sequence[str],
    config: Config,
    patient_id: str,
    as_of: date,
    ruleset_id: str | None = None,
    out: Run | None = None,
) -> tuple[Timeline, PatientResult]:
    """One patient's timeline and result, read from `inputs` (files, directories, NDJSON, '-') as `classify`
    reads them: what `explain` prints and draws, and what a service shows for one patient.

    `patient_id` is the Patient's id ("frns-sofia") or reference ("Patient/frns-sofia"). `out` gathers the run's
    counts and problems. Raises PatientNotFoundError (exit 4) when the input has no data for the patient, and
    PatientRefusedError (exit 1) when the patient's input has errors (the errors are in the message).
    """
    out = Run() if out is None else out
    wanted = patient_id.removeprefix("Patient/")
    doubt = as_of_doubt(as_of, date.today())
    if doubt is not None:
        out.problems.append(doubt)
    collector = read_input(inputs, config, out.problems)
    out.counts = collector.counts
    return one_patient(collector.each_patient(), config, wanted, as_of, out, ruleset_id)


def one_patient(
    patients: Iterable[PatientInput],
    config: Config,
    patient_id: str,
    as_of: date,
    out: Run,
    ruleset_id: str | None = None,
) -> tuple[Timeline, PatientResult]:
    """The timeline and result of the patient with id `patient_id` among `patients` (see `explain_patient`)."""
    seen = 0
    for patient in patients:
        seen += 1
        if patient.facts.patient_id != patient_id:
            continue
        if patient.refused:
            out.refused.append(patient)
            errors = "; ".join(str(p) for p in patient.problems if p.severity in ("error", "fatal"))
            raise PatientRefusedError(f"patient {patient_id} is refused because of errors in its input: {errors}")
        out.evaluated += 1
        out.problems.extend(patient.problems)
        result, timeline = evaluate_patient_with_timeline(patient, config, as_of, out, ruleset_id)
        return timeline, result
    raise PatientNotFoundError(
        f"no data for patient {patient_id} in the input ({seen} patient(s) read, {out.resources_read} resource(s))"
    )
