"""`fhir-ns convert`: FHIR input in, an idempotent R4 transaction Bundle of DetectedIssue/CarePlan/Provenance out."""

from __future__ import annotations

from datetime import date

import click
import orjson

from fhir_ns.catalogue import DEFAULT_CANONICAL_BASE
from fhir_ns.cli.options import common_options, load_config, report
from fhir_ns.fhir.writer import Settings, transaction
from fhir_ns.output import write_atomically
from fhir_ns.pipeline import run


@click.command()
@common_options
@click.option("-o", "--output", default="-", metavar="FILE", help="Write the Bundle here (default: stdout).")
@click.option(
    "--canonical-base",
    default=DEFAULT_CANONICAL_BASE,
    show_default=True,
    metavar="URL",
    help="Base URL of the project's canonical resources (CodeSystems, rule sets, identifiers).",
)
def convert(
    inputs: tuple[str, ...],
    ruleset_id: str | None,
    as_of: date | None,
    mapping_dirs: tuple[str, ...],
    outcome_path: str | None,
    verbose: bool,
    output: str,
    canonical_base: str,
) -> None:
    """Classify the patients in INPUT (Bundles, NDJSON, directories, '-' for stdin) and write the results."""
    config = load_config(mapping_dirs)
    outcome = run(inputs, config, as_of or date.today(), ruleset_id)
    bundle = transaction(outcome.results, Settings(canonical_base.rstrip("/")))
    write_atomically(output, orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    raise SystemExit(report(outcome, verbose, outcome_path))
