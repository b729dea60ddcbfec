"""Options and parameter types shared by the subcommands, and the report of input problems."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import click
import orjson

from fhir_ns.errors import INPUT_SKIPPED, NO_INPUT, OK
from fhir_ns.fhir.problems import operation_outcome
from fhir_ns.output import write_atomically
from fhir_ns.pipeline import Config, Run
from fhir_ns.terminology import extra_mapping_dirs


class DateParam(click.ParamType):
    """A calendar date, YYYY-MM-DD."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """INPUT..., --ruleset, --as-of, --mappings, --outcome, --verbose."""
    decorators = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option(
            "--ruleset",
            "ruleset_id",
            metavar="ID",
            help="Rule set to apply (default: chosen per patient by age at onset). See `fhir-ns rulesets`.",
        ),
        click.option(
            "--as-of",
            "as_of",
            type=DateParam(),
            default=None,
            help="Evaluate as of this date; later data is ignored (default: today).",
        ),
        click.option(
            "--mappings",
            "mapping_dirs",
            multiple=True,
            metavar="DIR",
            help="Site mapping directory with extra code tables (*.yaml) or rule sets (rulesets/*.yaml).",
        ),
        click.option(
            "--outcome",
            "outcome_path",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="Also write the input problems as a FHIR OperationOutcome to FILE.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="List informational problems one by one."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def load_config(mapping_dirs: tuple[str, ...]) -> Config:
    return Config.load(extra_mapping_dirs(mapping_dirs))


def report(run: Run, verbose: bool, outcome_path: str | None) -> int:
    """Print problems and a summary on stderr; write the OperationOutcome; return the exit code."""
    problems = run.all_problems
    informational = Counter(p.message for p in problems if p.severity == "information")
    for p in problems:
        if p.severity != "information" or verbose:
            click.echo(str(p), err=True)
    if informational and not verbose:
        click.echo(f"information: {sum(informational.values())} note(s) (use -v to list them)", err=True)
    refused = ", ".join(p.facts.patient_id for p in run.refused)
    click.echo(
        f"fhir-ns: read {run.resources_read} resource(s); {len(run.results)} patient(s) evaluated"
        + (f"; {len(run.refused)} refused because of errors in their input: {refused}" if run.refused else ""),
        err=True,
    )
    if outcome_path:
        write_atomically(outcome_path, orjson.dumps(operation_outcome(problems), option=orjson.OPT_INDENT_2) + b"\n")
    if run.resources_read == 0 and not run.results:
        return NO_INPUT
    return INPUT_SKIPPED if run.has_errors else OK
