"""`python -m bench --validate`: `fhir-ns validate` end to end on a bulk export of 500 MB or more.

The cohort's NDJSON files (bench/cohort.py) are joined into one file (kept beside them), and its collection
Bundles into one large Bundle; `fhir-ns validate` runs on each as a user runs it, in its own process, and the
rows give resources/s, MB/s and the peak RSS. `--before DIR` also runs the validate of another checkout (a
`git archive` of an earlier commit unpacked in DIR, run with PYTHONPATH=DIR) on the smallest cohort, and the
current code on the same file, for the speed-up on one input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from bench.cohort import CohortFiles

if TYPE_CHECKING:
    from bench.__main__ import Row


def joined_ndjson(files: CohortFiles) -> Path:
    """All the cohort's NDJSON in one file (made once)."""
    target = files.root / "all.ndjson"
    if not target.exists():
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for path in files.ndjson_files():
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 24):
                        out.write(chunk)
        partial.rename(target)
    return target


def large_bundle(files: CohortFiles) -> Path:
    """One collection Bundle of every resource of the cohort's Bundles (made once, written entry by entry)."""
    target = files.root / "bundle-all.json"
    if not target.exists():
        partial = target.with_suffix(".partial")
        seen: set[str] = set()
        with partial.open("wb") as out:
            out.write(b'{"resourceType":"Bundle","id":"bench-all","type":"collection","entry":[')
            first = True
            for path in files.bundle_files():
                for entry in orjson.loads(path.read_bytes())["entry"]:
                    if entry["fullUrl"] in seen:  # the formulary is in every Bundle
                        continue
                    seen.add(entry["fullUrl"])
                    out.write((b"" if first else b",") + orjson.dumps(entry))
                    first = False
            out.write(b"]}")
        partial.rename(target)
    return target


def measure(cohorts: dict[int, CohortFiles], args: argparse.Namespace, add: Callable[[Row], None]) -> None:
    """Rows for validate on the joined NDJSON and the large Bundle of each cohort, and the before/after pair."""
    from bench.__main__ import Row, run_cli  # noqa: F811 (the module that imports this one)

    for size, files in sorted(cohorts.items()):
        ndjson = joined_ndjson(files)
        resources = files.resources()
        got = run_cli(["validate", str(ndjson)], args.repeat)
        seconds, peak_kb = got.seconds, got.peak_kb
        add(Row(size, "fhir-ns validate (NDJSON)", seconds, resources, ndjson.stat().st_size / 1e6, peak_kb / 1024))
        if size != min(cohorts):
            continue  # a Bundle is still read whole: the smallest cohort's says what that costs
        bundle = large_bundle(files)
        got = run_cli(["validate", str(bundle)], 1)
        seconds, peak_kb = got.seconds, got.peak_kb
        note = "one collection Bundle"
        add(
            Row(
                size, "fhir-ns validate (Bundle)", seconds, resources, bundle.stat().st_size / 1e6, peak_kb / 1024, note
            )
        )
    if args.before:
        size, files = min(cohorts.items())
        ndjson = joined_ndjson(files)
        megabytes, resources = ndjson.stat().st_size / 1e6, files.resources()
        env = {"PYTHONPATH": str(args.before.resolve())}
        got = run_cli(["validate", str(ndjson)], 1, env)
        seconds, peak_kb = got.seconds, got.peak_kb
        add(Row(size, "validate before (NDJSON)", seconds, resources, megabytes, peak_kb / 1024, str(args.before)))
        got = run_cli(["validate", str(ndjson)], 1)
        seconds, peak_kb = got.seconds, got.peak_kb
        add(Row(size, "validate now (same NDJSON)", seconds, resources, megabytes, peak_kb / 1024))
