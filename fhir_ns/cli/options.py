"""Options and parameter types shared by the subcommands, and the report of input problems."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import click
import orjson

from fhir_ns.errors import INPUT_SKIPPED, NO_INPUT, OK
from fhir_ns.fhir.problems import operation_outcome
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.output import check_file, write_atomically
from fhir_ns.pipeline import Config, Run
from fhir_ns.terminology import extra_mapping_dirs

DEFAULT_SPILL = "512MB"


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


class SpillParam(click.ParamType):
    """A size above which facts go to disk: a number of patients, megabytes (200MB, 1GB), or 'off'."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> SpillLimit | None:
        if value is None or isinstance(value, SpillLimit):
            return value
        if str(value).strip().lower() == "off":
            return None
        try:
            return SpillLimit.parse(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of patients, a size such as 200MB or 1GB, or 'off'", param, ctx)


class OutputFile(click.ParamType):
    """A file to write ('-': stdout), checked before any work: an unwritable path is an OutputError (exit 8)."""

    name = "file"

    def __init__(self, option: str) -> None:
        self.option = option

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        check_file(str(value), self.option)
        return str(value)


def jobs_option(value: int) -> int:
    """--jobs: worker processes are forked, which some systems cannot do."""
    if value > 1 and "fork" not in multiprocessing.get_all_start_methods():
        raise click.BadParameter("more than one job needs a system that can fork processes (Linux, macOS)")
    return value


def jobs_flag(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The --jobs option of a command that does `what` in that many processes."""
    return click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        callback=lambda ctx, param, value: jobs_option(value),
        help=f"{what} in this many processes (the output is the same).",
    )


MAPPINGS = click.option(
    "--mappings",
    "mapping_dirs",
    multiple=True,
    metavar="DIR",
    help="Site mapping directory with extra code tables (*.yaml), rule sets (rulesets/*.yaml) or "
    "blood-pressure tables (bp/*.yaml).",
)
OUTCOME = click.option(
    "--outcome",
    "outcome_path",
    type=OutputFile("--outcome"),
    metavar="FILE",
    help="Also write the input problems as a FHIR OperationOutcome to FILE.",
)
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="List informational problems one by one.")
QUIET = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress display (it is shown only when stderr is a terminal and the results are not printed on it).",
)
SKIP_UNREADABLE = click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Evaluate the patients of an input file that holds unreadable records (malformed JSON, unknown "
    "resourceType) anyway, marking each of their results with the number skipped (default: refuse them).",
)
SPILL = click.option(
    "--spill-above",
    "spill",
    type=SpillParam(),
    default=DEFAULT_SPILL,
    show_default=True,
    help="Keep the facts read on disk (SQLite) once they exceed this many patients or this size in "
    "memory (e.g. 5000, 200MB, 1GB; 'off': never).",
)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """INPUT..., --ruleset, --as-of, --mappings, --outcome, --verbose (`evaluation_options`), --quiet, --jobs,
    --skip-unreadable, --spill-above."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        QUIET,
        jobs_flag("Read and classify"),
        SKIP_UNREADABLE,
        SPILL,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return evaluation_options(func)


def evaluation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """INPUT..., --ruleset, --as-of, --mappings, --outcome, --verbose: what every command that evaluates takes."""
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
        MAPPINGS,
        OUTCOME,
        VERBOSE,
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
        f"fhir-ns: read {run.resources_read} resource(s); {run.evaluated} patient(s) evaluated"
        + (f"; {len(run.refused)} refused because of errors in their input: {refused}" if run.refused else ""),
        err=True,
    )
    if outcome_path:
        write_atomically(outcome_path, orjson.dumps(operation_outcome(problems), option=orjson.OPT_INDENT_2) + b"\n")
    if run.resources_read == 0 and not run.evaluated:
        return NO_INPUT
    return INPUT_SKIPPED if run.has_errors else OK
