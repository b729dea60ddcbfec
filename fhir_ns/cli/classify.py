"""`fhir-ns classify`: a readable (or JSON) per-patient summary of classifications and findings."""

from __future__ import annotations

from datetime import date

import click
import orjson

from fhir_ns.cli.options import common_options, load_config, report
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.output import atomic_output, indented, json_array
from fhir_ns.pipeline import Run, stream
from fhir_ns.progress import Progress
from fhir_ns.rules.result import PatientResult
from fhir_ns.text import render


@click.command()
@common_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def classify(
    inputs: tuple[str, ...],
    ruleset_id: str | None,
    as_of: date | None,
    mapping_dirs: tuple[str, ...],
    outcome_path: str | None,
    verbose: bool,
    quiet: bool,
    jobs: int,
    skip_unreadable: bool,
    spill: SpillLimit | None,
    fmt: str,
) -> None:
    """Classify the patients in INPUT and print what was found, with reasons and evidence."""
    config = load_config(mapping_dirs)
    outcome = Run()
    progress = Progress.for_inputs(inputs, quiet, printing_results=True)
    results = stream(
        inputs, config, as_of or date.today(), outcome, json_element if fmt == "json" else text_element, ruleset_id,
        jobs=jobs, spill=spill, skip_unreadable=skip_unreadable, progress=progress,
    )  # fmt: skip
    try:
        with atomic_output("-") as out:  # each patient printed as soon as it is classified
            for piece in json_array(results) if fmt == "json" else results:
                out.write(piece)
            if fmt == "json":
                out.write(b"\n")
    finally:
        progress.close()
    raise SystemExit(report(outcome, verbose, outcome_path))


def json_element(result: PatientResult) -> bytes:
    """One patient's `as_json`, as an element of the printed JSON array."""
    return indented(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2), 2)


def text_element(result: PatientResult) -> bytes:
    """One patient's readable summary, as printed."""
    return (render(result) + "\n").encode()
