"""`python -m bench --report`: `fhir-ns report` against `fhir-ns classify` on the same input, in one bench run.

Both run as a user runs them, each in its own process, alternately (`--repeat N`: the fastest of each); the row
of each gives its time and peak RSS, and a line gives the ratio report / classify (issue 12's target: at most
2 x, with a peak RSS of at most 400 MB at 10,000 patients). The report is on cyclosporine, the regimen of the
cohort's steroid-sparing patients (bench/cohort.py), so its therapy table, tests and figures are all computed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cohort import AS_OF, CohortFiles

if TYPE_CHECKING:
    from bench.__main__ import CliRun, Row

THERAPY = "cyclosporine"


def measure(cohorts: dict[int, CohortFiles], args: argparse.Namespace, add: Callable[[Row], None]) -> list[str]:
    """Rows for classify and report on each cohort's NDJSON; the ratio lines."""
    from bench.__main__ import Row, run_cli  # noqa: F811 (the module that imports this one)

    lines = []
    for size, files in sorted(cohorts.items()):
        megabytes, resources = files.ndjson_bytes() / 1e6, files.resources()
        classify_args = ["classify", str(files.ndjson), "--as-of", AS_OF.isoformat(), "--format", "json"]
        classify_runs: list[CliRun] = []
        report_runs: list[CliRun] = []
        with tempfile.TemporaryDirectory(prefix="fhir-ns-bench-report-") as scratch:
            for i in range(args.repeat):
                out = str(Path(scratch) / f"report-{i}")
                report_args = [
                    "report",
                    str(files.ndjson),
                    "--as-of",
                    AS_OF.isoformat(),
                    "--therapy",
                    THERAPY,
                    "-o",
                    out,
                ]
                classify_runs.append(run_cli(classify_args))
                report_runs.append(run_cli(report_args))
        classify = min(classify_runs, key=lambda run: run.seconds)
        report = min(report_runs, key=lambda run: run.seconds)
        add(
            Row(
                size,
                "fhir-ns classify",
                classify.seconds,
                resources,
                megabytes,
                classify.peak_kb / 1024,
                classify.cpu_note,
            )
        )
        note = f"--therapy {THERAPY}; {report.cpu_note}"
        add(Row(size, "fhir-ns report", report.seconds, resources, megabytes, report.peak_kb / 1024, note))
        lines.append(
            f"{size:>7} report / classify {report.seconds / classify.seconds:.2f} x (target <= 2), report peak RSS "
            f"{report.peak_kb / 1024:.0f} MB (target <= 400 at 10,000 patients; fastest of {args.repeat} each, run "
            "alternately)"
        )
    return lines
