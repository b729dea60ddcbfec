"""`fhir-ns classify`: a readable (or JSON) per-patient summary of classifications and findings."""

from __future__ import annotations

import textwrap
from datetime import date
from functools import partial

import click
import orjson

from fhir_ns.catalogue import info
from fhir_ns.cli.options import common_options, load_config, report
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.fhir.writer import V3_DISPLAY
from fhir_ns.output import atomic_output, indented, json_array
from fhir_ns.pipeline import Run, stream
from fhir_ns.progress import Progress
from fhir_ns.rules.measures import regimen_words
from fhir_ns.rules.result import PatientResult
from fhir_ns.terminology import Terminology


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
    element = json_element if fmt == "json" else partial(text_element, terminology=config.terminology)
    results = stream(
        inputs, config, as_of or date.today(), outcome, element, ruleset_id,
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


def text_element(result: PatientResult, terminology: Terminology) -> bytes:
    """One patient's readable summary, as printed."""
    return (render(result, terminology) + "\n").encode()


def render(result: PatientResult, terminology: Terminology) -> str:
    """A clinician-readable summary of one patient: codes spelled out, resource ids never broken across lines."""
    wrap = _wrapper("      ", "      ")
    ruleset = f"rule set {result.ruleset.ref}" if result.ruleset_applied else "no rule set"
    lines = [f"Patient {result.patient_id}  ({ruleset}, {result.ruleset_choice}; as of {result.as_of})"]
    lines.append("  Classification:")
    for c in result.classifications:
        lines.append(f"    {info(c.code).display} ({c.code})  since {c.since}")
        lines.extend(wrap.wrap(c.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(c.evidence)))
    lines.append("  Findings:" if result.findings else "  Findings: none")
    for f in result.findings:
        category = V3_DISPLAY.get(f.category, f.category).lower()
        lines.append(f"    {info(f.code).display} ({f.code})  since {f.since}")
        lines.extend(wrap.wrap(f"{f.severity} severity; {category}"))
        lines.extend(wrap.wrap(f.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(f.evidence)))
    lines.extend(_measure_lines(result, terminology))
    notes = _wrapper("  ", "    ")
    if result.incomplete_input:
        lines.extend(notes.wrap(result.incomplete_input))
    for note in result.notes:
        lines.extend(notes.wrap(f"note: {note}"))
    lines.append("  Decision support for a clinician: review before acting.")
    return "\n".join(lines) + "\n"


def _measure_lines(result: PatientResult, terminology: Terminology) -> list[str]:
    """The measures, one line per therapy period and one for the state at the evaluation date (RULES.md §9)."""
    if not result.measures:
        return []
    lines = ["  Measures (relapse burden and response, per steroid-sparing therapy period):"]
    wrap = _wrapper("    ", "      ")
    periods: dict[tuple[date, date, str | None], list[str]] = {}
    state = None
    for m in result.measures:
        if m.code == "state-at-evaluation":
            state = m
            continue
        said = periods.setdefault((m.start, m.end, m.therapy), [])
        if m.code == "relapse-count":
            said.append(f"{m.value} relapse(s)")
        elif m.code == "relapse-rate":
            said[-1] += f" ({float(m.value or 0):.2f} per year)"
        elif m.code == "minimum-maintenance-prednisolone":
            said.append(f"minimum maintenance prednisolone {float(m.value or 0):.2f} mg/kg on alternate days")
        elif m.code == "time-to-remission":
            said.append(
                f"no complete remission by day {m.value}" if m.censored else f"complete remission on day {m.value}"
            )
        elif m.code == "time-to-first-relapse":
            said.append(f"no relapse by day {m.value}" if m.censored else f"first relapse on day {m.value}")
    for (start, end, therapy), said in periods.items():
        lines.extend(wrap.wrap(f"{start} to {end}  {regimen_words(terminology, therapy)}: {'; '.join(said)}"))
    if state is not None:
        lines.extend(wrap.wrap(f"state on {state.end}: {str(state.value).replace('-', ' ')} ({state.reason})"))
    return lines


def _wrapper(first: str, rest: str) -> textwrap.TextWrapper:
    """Lines of at most 100 characters that break only between words (never inside a resource id)."""
    return textwrap.TextWrapper(
        width=100, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )
