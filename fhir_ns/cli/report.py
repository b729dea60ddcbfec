"""`fhir-ns report`: a cohort report (tables, figures, patient-level tables) written into a directory."""

from __future__ import annotations

import csv
import ctypes
import gc
from contextlib import suppress
from datetime import date

import click

from fhir_ns.cli.options import MAPPINGS, OUTCOME, QUIET, SKIP_UNREADABLE, SPILL, VERBOSE, DateParam, load_config
from fhir_ns.cli.options import report as report_problems
from fhir_ns.errors import ConfigError
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.output import atomic_directory, check_empty_directory
from fhir_ns.pipeline import Config, Run, as_of_doubt, evaluate_patient, read_input
from fhir_ns.progress import Progress

DEFAULT_OUTPUT = "fhir-ns-report"


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--therapy",
    metavar="DRUG[+DRUG]",
    help="The steroid-sparing regimen to report on (e.g. tacrolimus+mizoribine; the order does not matter): "
    "relapse rate and minimum prednisolone dose before vs during it, remission, kidney failure, time to relapse.",
)
@click.option(
    "--ruleset",
    "ruleset_ids",
    multiple=True,
    metavar="ID",
    help="Rule set to evaluate every patient under; repeat it to put several side by side (default: each "
    "patient's by age at onset). See `fhir-ns rulesets`.",
)
@click.option("--as-of", "as_of", type=DateParam(), help="Evaluate every patient as of this date (default: today).")
@click.option(
    "--as-of-file",
    "as_of_file",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    metavar="CSV",
    help="Each patient's own evaluation date: a CSV file with the header patient,as_of (retrospective studies). "
    "A patient of the input not in it is not evaluated, and reported.",
)
@click.option(
    "-o",
    "--output",
    default=DEFAULT_OUTPUT,
    show_default=True,
    metavar="DIR",
    help="Directory to write the report into (new or empty); written whole or not at all.",
)
@MAPPINGS
@OUTCOME
@VERBOSE
@QUIET
@SKIP_UNREADABLE
@SPILL
def report(
    inputs: tuple[str, ...],
    therapy: str | None,
    ruleset_ids: tuple[str, ...],
    as_of: date | None,
    as_of_file: str | None,
    output: str,
    mapping_dirs: tuple[str, ...],
    outcome_path: str | None,
    verbose: bool,
    quiet: bool,
    skip_unreadable: bool,
    spill: SpillLimit | None,
) -> None:
    """Evaluate the patients in INPUT and write a cohort report into a directory: report.md and report.html
    (tables and figures), patients.csv and measures.csv (and .parquet), summary.json."""
    from fhir_ns.report.cohort import Cohort, Evaluation  # the statistics and plots are imported after reading

    if as_of is not None and as_of_file is not None:
        raise click.UsageError("give --as-of DATE or --as-of-file CSV, not both")
    check_empty_directory(output, "-o")
    config = load_config(mapping_dirs)
    for ruleset_id in ruleset_ids:
        if ruleset_id not in config.rulesets:
            raise ConfigError(f"unknown rule set {ruleset_id!r}; known: {', '.join(sorted(config.rulesets))}")
    regimen = None if therapy is None else _regimen(therapy, config)
    dates = None if as_of_file is None else read_as_of_file(as_of_file)
    today = date.today()
    outcome = Run()
    latest = as_of or (max(dates.values(), default=today) if dates else today)
    doubt = as_of_doubt(latest, today)
    if doubt is not None:
        outcome.problems.append(doubt)
    evaluations = [Evaluation(r) for r in dict.fromkeys(ruleset_ids)] or [Evaluation(None)]
    progress = Progress.for_inputs(inputs, quiet)
    seen: set[str] = set()
    try:
        with atomic_directory(output, "-o") as directory:
            with Cohort(evaluations, regimen, directory) as cohort:
                collector = read_input(inputs, config, outcome.problems, None, spill, skip_unreadable, progress)
                outcome.counts = collector.counts
                for patient in collector.each_patient(progress.evaluating if progress.enabled else None):
                    progress.evaluated()
                    pid = patient.facts.patient_id
                    seen.add(pid)
                    if patient.refused:
                        outcome.refused.append(patient)
                        continue
                    day = (as_of or today) if dates is None else dates.get(pid)
                    if day is None:
                        cohort.missing_as_of.append(pid)
                        outcome.problems.append(_missing(pid, patient.facts.reference, as_of_file or ""))
                        continue
                    outcome.evaluated += 1
                    outcome.problems.extend(patient.problems)
                    results = [evaluate_patient(patient, config, day, outcome, e.ruleset_id) for e in evaluations]
                    cohort.add(patient.facts.birth_date, results)
                del collector  # the facts read: their memory goes back for the statistics and plots below
                _give_back_freed_memory()
            progress.close()
            if outcome.resources_read == 0 and not outcome.evaluated:
                raise SystemExit(report_problems(outcome, verbose, outcome_path))  # nothing read: no report
            if dates is not None:
                _unused(dates, seen, as_of_file or "", outcome)
            from fhir_ns.report.compose import compose

            refused = [p.facts.patient_id for p in outcome.refused]
            compose(cohort, directory, inputs, refused, today)
    finally:
        progress.close()
    click.echo(f"fhir-ns: report written to {output}", err=True)
    raise SystemExit(report_problems(outcome, verbose, outcome_path))


def _give_back_freed_memory() -> None:
    """Return the memory of the facts just freed to the system (glibc keeps freed heap pages otherwise), so that
    the statistics and plotting libraries loaded next do not add to it in the peak (about 120 MB at 10,000
    patients). Elsewhere than glibc, nothing to do."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _regimen(therapy: str, config: Config) -> str:
    """--therapy as the drug ids of the mappings joined by "+" (names and brands accepted: Bredinin, Prograf)."""
    known = config.terminology.drugs
    ids = []
    for part in therapy.split("+"):
        name = part.strip().lower()
        drug = name if name in known else config.terminology.drug_for_text(name)
        if not name or drug is None:
            sparing = sorted(
                d for d, spec in known.items() if spec.drug_class in config.terminology.steroid_sparing_classes
            )
            raise click.BadParameter(
                f"{part.strip()!r} is not a drug fhir-ns knows; steroid-sparing drugs: {', '.join(sparing)}",
                param_hint="--therapy",
            )
        ids.append(drug)
    return "+".join(sorted(set(ids), key=ids.index))


def read_as_of_file(path: str) -> dict[str, date]:
    """patient -> evaluation date, from a CSV file with the header patient,as_of (other columns ignored);
    a malformed file is a usage error naming the line."""
    out: dict[str, date] = {}

    def fail(message: str) -> click.BadParameter:
        return click.BadParameter(f"{path}: {message}", param_hint="--as-of-file")

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"patient", "as_of"} <= {f.strip() for f in reader.fieldnames}:
                raise fail(f"the first line must be the header patient,as_of (found {reader.fieldnames or 'nothing'})")
            reader.fieldnames = [f.strip() for f in reader.fieldnames]
            for row in reader:
                line = reader.line_num
                patient = (row.get("patient") or "").strip().removeprefix("Patient/")
                text = (row.get("as_of") or "").strip()
                if not patient and not text:
                    continue
                if not patient:
                    raise fail(f"line {line}: no patient")
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    raise fail(f"line {line}: {text!r} is not a date (YYYY-MM-DD)") from None
                if patient in out and out[patient] != day:
                    raise fail(f"line {line}: patient {patient} is given two dates ({out[patient]} and {day})")
                out[patient] = day
    except UnicodeDecodeError:
        raise fail("not UTF-8 text") from None
    except csv.Error as exc:
        raise fail(f"not a CSV file ({exc})") from None
    if not out:
        raise fail("no patient in it")
    return out


def _missing(pid: str, reference: str, path: str) -> Problem:
    return Problem(
        "error",
        "not-found",
        f"patient {pid} has no evaluation date in {path}: not evaluated (add a line {pid},YYYY-MM-DD)",
        Location(f"--as-of-file {path}"),
        None,
        reference,
        pid,
    )


def _unused(dates: dict[str, date], seen: set[str], path: str, outcome: Run) -> None:
    """A warning naming the patients of the CSV file that are not in the input (a mistyped id, a wrong file)."""
    absent = sorted(set(dates) - seen)
    if absent:
        shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        outcome.problems.append(
            Problem(
                "warning",
                "not-found",
                f"{len(absent)} patient(s) of {path} are not in the input: {shown}",
                Location(f"--as-of-file {path}"),
            )
        )
