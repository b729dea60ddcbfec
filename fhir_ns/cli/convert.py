"""`fhir-ns convert`: FHIR input in, an idempotent R4 transaction Bundle of DetectedIssue/CarePlan/Provenance out."""

from __future__ import annotations

from datetime import date
from functools import partial

import click

from fhir_ns.catalogue import DEFAULT_CANONICAL_BASE
from fhir_ns.cli.options import OutputFile, common_options, load_config, report
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.fhir.writer import Settings, entries_json, transaction_json
from fhir_ns.output import atomic_output
from fhir_ns.pipeline import Run, stream
from fhir_ns.progress import Progress
from fhir_ns.validate import VERSIONS, EntryGate


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
) -> None:
    """Classify the patients in INPUT (Bundles, NDJSON, directories, '-' for stdin) and write the results.

    Each entry fhir-ns reads is first checked for FHIR structure and required codes (as `fhir-ns validate`
    layers 2-3); an entry that fails is not used and its patient is refused."""
    config = load_config(mapping_dirs)
    outcome = Run()
    settings = Settings(canonical_base.rstrip("/"))
    gate = EntryGate(version, terminology=config.terminology)  # type: ignore[arg-type]
    render = partial(entries_json, settings=settings)
    progress = Progress.for_inputs(inputs, quiet, printing_results=output == "-")
    patients = stream(
        inputs, config, as_of or date.today(), outcome, render, ruleset_id, gate, jobs, spill, skip_unreadable,
        progress,
    )  # fmt: skip
    try:
        with atomic_output(output) as out:  # each patient's entries written as they are produced
            for piece in transaction_json(patients, settings):
                out.write(piece)
            out.write(b"\n")
    finally:
        progress.close()
    raise SystemExit(report(outcome, verbose, outcome_path))
