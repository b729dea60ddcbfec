"""`fhir-ns convert`: FHIR input in, an idempotent R4 transaction Bundle of DetectedIssue/CarePlan/measure
Observation/Provenance out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date
from functools import partial
from pathlib import Path

import click

from fhir_ns.catalogue import DEFAULT_CANONICAL_BASE
from fhir_ns.cli.options import OutputFile, common_options, load_config, report
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.fhir.writer import PatientEntries, Settings, patient_json, transaction_json
from fhir_ns.output import atomic_output, check_empty_directory
from fhir_ns.pipeline import Run, stream
from fhir_ns.progress import Progress
from fhir_ns.validate import VERSIONS, EntryGate

DEFAULT_MAX_ENTRIES = 500  # below the transaction sizes common FHIR servers accept in one request


@click.command()
@common_options
@click.option(
    "-o",
    "--output",
    default="-",
    type=OutputFile("-o"),
    metavar="FILE",
    help="Write the Bundle here (default: stdout); its directory must exist.",
)
@click.option(
    "--output-dir",
    metavar="DIR",
    help="Write transaction Bundles server-sized into DIR (new or empty): at most --max-entries entries each, "
    "never splitting a patient, or one per patient with --per-patient.",
)
@click.option("--per-patient", is_flag=True, help="With --output-dir: one Bundle per patient (<patient id>.json).")
@click.option(
    "--max-entries",
    type=click.IntRange(min=2),
    default=DEFAULT_MAX_ENTRIES,
    show_default=True,
    help="Most entries in one Bundle written to --output-dir; a single -o Bundle larger than this is warned of.",
)
@click.option(
    "--canonical-base",
    default=DEFAULT_CANONICAL_BASE,
    show_default=True,
    metavar="URL",
    help="Base URL of the project's canonical resources (CodeSystems, rule sets, identifiers).",
)
@click.option(
    "--fhir-version",
    "version",
    type=click.Choice(VERSIONS),
    default="R4",
    show_default=True,
    help="FHIR version the input is checked against (structure and required codes) before it is used.",
)
def convert(
    inputs: tuple[str, ...],
    ruleset_id: str | None,
    as_of: date | None,
    mapping_dirs: tuple[str, ...],
    outcome_path: str | None,
    verbose: bool,
    quiet: bool,
    output: str,
    jobs: int,
    skip_unreadable: bool,
    spill: SpillLimit | None,
    canonical_base: str,
    version: str,
    output_dir: str | None,
    per_patient: bool,
    max_entries: int,
) -> None:
    """Classify the patients in INPUT (Bundles, NDJSON, directories, '-' for stdin) and write the results.

    Each entry fhir-ns reads is first checked for FHIR structure and required codes (as `fhir-ns validate`
    layers 2-3); an entry that fails is not used and its patient is refused."""
    if output_dir is not None and output != "-":
        raise click.UsageError("give -o FILE or --output-dir DIR, not both")
    if per_patient and output_dir is None:
        raise click.UsageError("--per-patient writes into --output-dir DIR")
    if output_dir is not None:
        check_empty_directory(output_dir, "--output-dir")
    config = load_config(mapping_dirs)
    outcome = Run()
    settings = Settings(canonical_base.rstrip("/"))
    gate = EntryGate(version, terminology=config.terminology)  # type: ignore[arg-type]
    render = partial(patient_json, settings=settings)
    progress = Progress.for_inputs(inputs, quiet, printing_results=output == "-" and output_dir is None)
    patients = stream(
        inputs, config, as_of or date.today(), outcome, render, ruleset_id, gate, jobs, spill, skip_unreadable,
        progress,
    )  # fmt: skip
    try:
        if output_dir is not None:
            written = write_bundles(patients, Path(output_dir), settings, None if per_patient else max_entries)
        else:
            written = [write_bundle(patients, output, settings)]
    finally:
        progress.close()
    too_big = [(name, n) for name, n in written if n > max_entries]
    for name, n in too_big:
        where = "one patient's" if output_dir is not None else "the"
        click.echo(
            f"warning: {name}: {where} transaction Bundle has {n} entries, more than {max_entries} (many FHIR "
            "servers refuse a transaction that large)"
            + (
                "; write server-sized Bundles with --output-dir DIR (and --max-entries N or --per-patient)"
                if output_dir is None
                else ""
            ),
            err=True,
        )
    raise SystemExit(report(outcome, verbose, outcome_path))


def write_bundle(patients: Iterable[PatientEntries], output: str, settings: Settings) -> tuple[str, int]:
    """All patients' entries in one transaction Bundle (`-o`, or stdout): (where, how many entries)."""
    count = 1  # the Device
    with atomic_output(output) as out:  # each patient's entries written as they are produced

        def counted() -> Iterator[bytes]:
            nonlocal count
            for patient in patients:
                count += patient.size
                yield patient.json

        for piece in transaction_json(counted(), settings):
            out.write(piece)
        out.write(b"\n")
    return ("standard output" if output == "-" else output), count


def write_bundles(
    patients: Iterable[PatientEntries], directory: Path, settings: Settings, max_entries: int | None
) -> list[tuple[str, int]]:
    """Transaction Bundles in `directory`: one per patient (`max_entries` None, named after the patient) or
    of at most `max_entries` entries, a patient's entries never split (bundle-00001.json, ...); each Bundle
    carries the fhir-ns Device its Provenance names. Returns (file, entries) of each."""
    written: list[tuple[str, int]] = []
    batch: list[PatientEntries] = []

    def flush(name: str) -> None:
        path = directory / name
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(str(path)) as out:
            for piece in transaction_json((p.json for p in batch), settings):
                out.write(piece)
            out.write(b"\n")
        written.append((str(path), 1 + sum(p.size for p in batch)))
        batch.clear()

    for patient in patients:
        if not patient.size:
            continue
        if max_entries is None:
            batch.append(patient)
            flush(f"{_file_name(patient.patient)}.json")
            continue
        if batch and 1 + sum(p.size for p in batch) + patient.size > max_entries:
            flush(f"bundle-{len(written) + 1:05d}.json")
        batch.append(patient)
    if batch:
        flush(f"bundle-{len(written) + 1:05d}.json")
    return written


def _file_name(patient_id: str) -> str:
    """A patient id as a file name (FHIR ids are [A-Za-z0-9-.]; anything else becomes _)."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", patient_id).lstrip(".")
    return safe or "_"
