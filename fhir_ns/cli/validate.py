"""`fhir-ns validate`: layered validation of FHIR files, reported as text or OperationOutcomes."""

from __future__ import annotations

import sys

import click

from fhir_ns.cli.options import jobs_flag, load_config
from fhir_ns.errors import INPUT_SKIPPED, OK, USAGE
from fhir_ns.progress import Progress
from fhir_ns.validate import VERSIONS, Validator
from fhir_ns.validate.render import bundle, strict, text

ERRORS_FOUND = INPUT_SKIPPED  # 1: some input is invalid
UNREADABLE = USAGE  # 2: usage or I/O problem (a file missing or unreadable)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--fhir-version", "version", type=click.Choice(VERSIONS), default="R4", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", "is_strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--mappings",
    "mapping_dirs",
    multiple=True,
    metavar="DIR",
    help="Site mapping directory, as for classify/convert (what the input profile knows).",
)
@click.option("-v", "--verbose", is_flag=True, help="List informational issues too (text format).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display (shown only when stderr is a terminal).")
@jobs_flag("Validate (no progress display)")
def validate(
    paths: tuple[str, ...],
    version: str,
    fmt: str,
    is_strict: bool,
    mapping_dirs: tuple[str, ...],
    verbose: bool,
    quiet: bool,
    jobs: int,
) -> None:
    """Validate FHIR files (Bundles, resources, NDJSON, directories, '-' for stdin) in six layers:
    syntax, structure, required bindings, invariants, the fhir-ns input profile, the fhir-ns output profile."""
    config = load_config(mapping_dirs)
    progress = Progress.for_inputs(paths, quiet)  # the report is printed once validation is done
    validator = Validator(version, config.terminology, config.rulesets)  # type: ignore[arg-type]
    try:
        result = validator.validate(list(paths), progress, jobs)
    finally:
        progress.close()
    if is_strict:
        strict(result)
    out = sys.stdout.buffer
    if fmt == "json":
        for piece in bundle(result):
            out.write(piece)
        out.write(b"\n")
    else:
        for line in text(result, verbose):
            out.write(line.encode())
    out.flush()
    errors = result.errors
    result.spool.close()
    if result.unreadable:
        raise SystemExit(UNREADABLE)
    raise SystemExit(ERRORS_FOUND if errors else OK)
