"""`fhir-ns explain`: one patient's result and the timeline it rests on, as text or as a picture."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from fhir_ns.cli.options import OutputFile, evaluation_options, load_config, report
from fhir_ns.errors import ConfigError
from fhir_ns.output import write_atomically
from fhir_ns.pipeline import Run, explain_patient
from fhir_ns.text import explanation


class FigureFile(OutputFile):
    """A .png or .svg file to write the figure to (the suffix gives the format)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            from fhir_ns.plot import FORMATS
        except ImportError as exc:  # the `plot` extra is not installed
            raise ConfigError(f"--plot needs matplotlib ({exc}): pip install 'fhir-ns[plot]'") from exc
        if Path(str(value)).suffix.lower().lstrip(".") not in FORMATS:
            self.fail(f"{value!r}: the figure is written as .png or .svg (give a file name ending so)", param, ctx)
        return super().convert(value, param, ctx)


@click.command()
@evaluation_options
@click.option("--patient", "patient_id", required=True, metavar="ID", help="The patient to explain (id or Patient/id).")
@click.option(
    "--plot",
    "plot_path",
    type=FigureFile("--plot"),
    metavar="FILE.png|FILE.svg",
    help="Draw the patient's timeline into this file instead of printing the text.",
)
def explain(
    inputs: tuple[str, ...],
    ruleset_id: str | None,
    as_of: date | None,
    mapping_dirs: tuple[str, ...],
    outcome_path: str | None,
    verbose: bool,
    patient_id: str,
    plot_path: str | None,
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
    raise SystemExit(report(outcome, verbose, outcome_path))
