"""`fhir-ns explain`: one patient's result and the timeline it rests on, as text or as a picture."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from fhir_ns.cli.options import DateParam, OutputFile, load_config, report
from fhir_ns.output import write_atomically
from fhir_ns.pipeline import Run, explain_patient
from fhir_ns.text import explanation


class FigureFile(OutputFile):
    """A .png or .svg file to write the figure to (the suffix gives the format)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from fhir_ns.plot import FORMATS

        if Path(str(value)).suffix.lower().lstrip(".") not in FORMATS:
            self.fail(f"{value!r}: the figure is written as .png or .svg (give a file name ending so)", param, ctx)
        return super().convert(value, param, ctx)


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--patient", "patient_id", required=True, metavar="ID", help="The patient to explain (id or Patient/id).")
@click.option(
    "--as-of",
    "as_of",
    type=DateParam(),
    default=None,
    help="Evaluate as of this date; later data is ignored (default: today).",
)
@click.option(
    "--ruleset",
    "ruleset_id",
    metavar="ID",
    help="Rule set to apply (default: chosen by age at onset). See `fhir-ns rulesets`.",
)
@click.option(
    "--plot",
    "plot_path",
    type=FigureFile("--plot"),
    metavar="FILE.png|FILE.svg",
    help="Draw the patient's timeline into this file instead of printing the text.",
)
@click.option(
    "--mappings",
    "mapping_dirs",
    multiple=True,
    metavar="DIR",
    help="Site mapping directory with extra code tables (*.yaml) or rule sets (rulesets/*.yaml).",
)
@click.option("-v", "--verbose", is_flag=True, help="List informational problems one by one.")
def explain(
    inputs: tuple[str, ...],
    patient_id: str,
    as_of: date | None,
    ruleset_id: str | None,
    plot_path: str | None,
    mapping_dirs: tuple[str, ...],
    verbose: bool,
) -> None:
    """Explain one patient of INPUT: the classifications and findings with their reasons and evidence, then the
    timeline they rest on (episodes, proteinuria, albumin, kidney function, drugs); with --plot, the same as a
    picture."""
    config = load_config(mapping_dirs)
    outcome = Run()
    timeline, result = explain_patient(inputs, config, patient_id, as_of or date.today(), ruleset_id, outcome)
    if plot_path is None:
        click.echo(explanation(timeline, result), nl=False)
    else:
        from fhir_ns.plot import timeline_figure  # matplotlib is loaded only to draw

        fmt = Path(plot_path).suffix.lower().lstrip(".")
        write_atomically(plot_path, timeline_figure(timeline, result, fmt=fmt))
    raise SystemExit(report(outcome, verbose, None))
