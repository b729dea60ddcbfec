"""The report put together once every patient is gathered: tables, figures, and the files they go in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from fhir_ns import __version__
from fhir_ns.errors import OutputError
from fhir_ns.report.cohort import Cohort
from fhir_ns.report.figures import category_counts, first_relapse, paired_rates
from fhir_ns.report.tables import category_table, dates, differing_table, therapy_table
from fhir_ns.report.write import Document, therapy_csv, write_files


def compose(
    cohort: Cohort, directory: Path, inputs: Sequence[str], refused: Sequence[str], today: date
) -> dict[str, Any]:
    """Write the report's tables, figures and files for a cohort already gathered into `directory` (where
    patients.csv and measures.csv already are); returns summary.json's content."""
    figures_dir = directory / "figures"
    evaluations = cohort.evaluations
    intro = [
        f"fhir-ns {__version__}, {today}: {cohort.evaluated} patient(s) evaluated from {', '.join(inputs)}"
        + (f"; {len(refused)} refused because of errors in their input ({_some(refused)})" if refused else "")
        + (
            f"; {len(cohort.missing_as_of)} not evaluated because --as-of-file gives no date for them "
            f"({_some(cohort.missing_as_of)})"
            if cohort.missing_as_of
            else ""
        )
        + ".",
        "Evaluated under: " + "; ".join(f"{e.label}, {dates(cohort.tallies[e])}" for e in evaluations) + ".",
        "Decision support and research aid: every figure is computed from the FHIR data as read, under the rule "
        "set named beside it; check the patient-level tables (patients.csv, measures.csv) before publishing.",
    ]
    doc = Document("fhir-ns cohort report", intro)
    summary: dict[str, Any] = {
        "fhir_ns": __version__,
        "therapy": cohort.therapy,
        "evaluations": {},
    }
    doc.blocks.append("Categories")
    doc.blocks.append(category_table(cohort))
    if len(evaluations) > 1:
        doc.blocks.append(differing_table(cohort))
    doc.blocks.append(category_counts(cohort, figures_dir))
    curves = []
    for e in evaluations:
        tally = cohort.tallies[e]
        entry: dict[str, Any] = {
            "ruleset": e.ruleset_id,
            "evaluated": tally.evaluated,
            "first_as_of": None if tally.first_as_of is None else tally.first_as_of.isoformat(),
            "last_as_of": None if tally.last_as_of is None else tally.last_as_of.isoformat(),
            "rulesets_applied": dict(tally.rulesets),
            "categories": dict(sorted(tally.categories.items())),
        }
        summary["evaluations"][e.label] = entry
        if cohort.therapy is None:
            continue
        if e is evaluations[0]:
            doc.blocks.append(f"Patients given {cohort.therapy}")
        table, computed = therapy_table(cohort, e)
        doc.blocks.append(table)
        entry["therapy"] = {name: figures.as_json() for name, figures in computed.items()}
        entry["therapy_patients"] = [row.patient for row in tally.therapy]
        curves.append((e.label, computed["All"].first_relapse))
    if cohort.therapy is not None and any(t.therapy for t in cohort.tallies.values()):
        doc.blocks.append(paired_rates(cohort, figures_dir))
        doc.blocks.append(first_relapse(cohort, curves, figures_dir))
    doc.closing.append(
        "Files: patients.csv / patients.parquet (patient x rule set x category x since), measures.csv / "
        "measures.parquet (one row per measure, with its period, therapy, evidence and reason), "
        + ("therapy.csv (each patient's values behind the therapy table), " if cohort.therapy else "")
        + "summary.json (every figure above at full precision), figures/ (PNG and SVG)."
    )
    try:
        if cohort.therapy is not None:
            therapy_csv(
                directory / "therapy.csv", ((e.label, r) for e in evaluations for r in cohort.tallies[e].therapy)
            )
        write_files(directory, doc, summary)
    except OSError as exc:  # a full disk, a permission taken away mid-run
        raise OutputError(f"cannot write the report: {exc.strerror or exc}") from exc
    return summary


def _some(patients: Sequence[str], shown: int = 20) -> str:
    """Patient ids, the first `shown` of them (the messages on stderr and --outcome name every one)."""
    more = len(patients) - shown
    return ", ".join(patients[:shown]) + (f" and {more} more: see the messages of the run" if more > 0 else "")
