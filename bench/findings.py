"""`python -m bench --findings`: the share of the cohort's patients with each finding and classification.

Not a timing: what the rules say about the synthetic cohort, to see how a rule change moves the alerts
(e.g. dose findings judged per course instead of per record). Counts patients, not findings: a patient
with two `dose-out-of-range` findings counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date

from bench.cohort import AS_OF, CohortFiles
from fhir_ns.pipeline import Config, Run, stream
from fhir_ns.rules.result import PatientResult


def _codes(result: PatientResult) -> tuple[set[str], set[str]]:
    return {f.code for f in result.findings}, {c.code for c in result.classifications}


def shares(files: CohortFiles, as_of: date = AS_OF) -> tuple[int, Counter[str], Counter[str]]:
    """(patients classified, patients per finding code, patients per classification code)."""
    findings: Counter[str] = Counter()
    classifications: Counter[str] = Counter()
    patients = 0
    for found, classified in stream([str(files.ndjson)], Config.load(), as_of, Run(), _codes):
        patients += 1
        findings.update(found)
        classifications.update(classified)
    return patients, findings, classifications


def table(title: str, patients: int, counts: Counter[str]) -> Iterable[str]:
    yield f"| {title} | patients | share |"
    yield "|---|---:|---:|"
    for code, n in sorted(counts.items()):
        yield f"| `{code}` | {n} | {n / patients:.1%} |"
    if not counts:
        yield "| (none) | 0 | 0.0% |"


def report(files: CohortFiles, as_of: date = AS_OF) -> str:
    patients, findings, classifications = shares(files, as_of)
    lines = [f"{patients:,} patients classified as of {as_of}", ""]
    lines += table("finding", patients, findings)
    lines += ["", *table("classification", patients, classifications)]
    return "\n".join(lines)
