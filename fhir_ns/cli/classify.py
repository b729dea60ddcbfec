"""`fhir-ns classify`: a readable (or JSON) per-patient summary of classifications and findings."""

from __future__ import annotations

import textwrap
from datetime import date

import click
import orjson

from fhir_ns.cli.options import common_options, load_config, report
from fhir_ns.pipeline import run
from fhir_ns.rules.result import PatientResult


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
    fmt: str,
) -> None:
    """Classify the patients in INPUT and print what was found, with reasons and evidence."""
    config = load_config(mapping_dirs)
    outcome = run(inputs, config, as_of or date.today(), ruleset_id)
    if fmt == "json":
        data = [r.as_json() for r in outcome.results]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        for result in outcome.results:
            click.echo(render(result))
    raise SystemExit(report(outcome, verbose, outcome_path))


def render(result: PatientResult) -> str:
    """A clinician-readable summary of one patient."""
    wrap = textwrap.TextWrapper(width=100, initial_indent="      ", subsequent_indent="      ")
    lines = [
        f"Patient {result.patient_id}  (rule set {result.ruleset.ref}, {result.ruleset_choice}; as of {result.as_of})"
    ]
    lines.append("  Classification:")
    for c in result.classifications:
        lines.append(f"    {c.code}  since {c.since}")
        lines.extend(wrap.wrap(c.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(c.evidence)))
    lines.append("  Findings:" if result.findings else "  Findings: none")
    for f in result.findings:
        lines.append(f"    {f.code} [{f.severity}, {f.category}]  since {f.since}")
        lines.extend(wrap.wrap(f.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(f.evidence)))
    for note in result.notes:
        lines.extend(textwrap.wrap(f"note: {note}", width=100, initial_indent="  ", subsequent_indent="    "))
    lines.append("  Decision support for a clinician: review before acting.")
    return "\n".join(lines) + "\n"
