"""`python -m bench --validate`: `fhir-ns validate` end to end on a bulk export of 500 MB or more.

The cohort's NDJSON files (bench/cohort.py) are joined into one file (kept beside them), and its collection
Bundles into one large Bundle (10,000 patients: 594 MB of NDJSON, a Bundle of about 660 MB); `fhir-ns validate`
runs on each as a user runs it, in its own process, and the rows give resources/s, MB/s and the peak RSS, and a
last line whether each input of 500 MB or more stayed within 300 MB; with `--jobs N` (default 2) also
`validate --jobs N` on the NDJSON, and its speed-up over one process. `--before DIR` also runs the validate of
another checkout (a `git archive` of an earlier commit unpacked in DIR, run with PYTHONPATH=DIR) on the
smallest cohort's NDJSON, and the current code on the same file right after (in one process, and with
`--jobs N`), for the speed-up on one input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bench.cohort import CohortFiles
from fhir_ns.fhir.stream import Element, members

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

    rows: list[Row] = []

    cpu: dict[str, float] = {}

    def row(got: Any, size: int, name: str, resources: int, path: Path, note: str = "") -> None:
        note = ", ".join(x for x in (note, got.cpu_note) if x)
        found = Row(size, name, got.seconds, resources, path.stat().st_size / 1e6, got.peak_kb / 1024, note)
        rows.append(found)
        cpu[name] = got.cpu
        add(found)

    jobs = ["--jobs", str(args.jobs)]
    for size, files in sorted(cohorts.items()):
        ndjson = joined_ndjson(files)
        resources = files.resources()
        row(run_cli(["validate", str(ndjson)], args.repeat), size, "fhir-ns validate (NDJSON)", resources, ndjson)
        if args.jobs > 1:
            name = f"fhir-ns validate --jobs {args.jobs} (NDJSON)"
            row(run_cli(["validate", *jobs, str(ndjson)], args.repeat), size, name, resources, ndjson)
            print(
                f"validate --jobs {args.jobs} on {size:,} patients: {rows[-2].seconds / rows[-1].seconds:.2f} x one "
                f"process (CPU {cpu[name]:.1f} s against {cpu['fhir-ns validate (NDJSON)']:.1f} s)",
                flush=True,
            )
        bundle = large_bundle(files)
        got = run_cli(["validate", str(bundle)], 1)
        row(got, size, "fhir-ns validate (Bundle)", bundle_resources(bundle), bundle, "one collection Bundle")
    if args.before:
        size, files = min(cohorts.items())
        ndjson = joined_ndjson(files)
        resources = files.resources()
        got = run_cli(["validate", str(ndjson)], 1, {"PYTHONPATH": str(args.before.resolve())})
        row(got, size, "validate before (NDJSON)", resources, ndjson, str(args.before))
        before = rows[-1]
        row(run_cli(["validate", str(ndjson)], 1), size, "validate now (same NDJSON)", resources, ndjson)
        print(
            f"validate on the same NDJSON: {rows[-1].per_second / before.per_second:.2f} x the throughput "
            f"({cpu['validate before (NDJSON)'] / cpu['validate now (same NDJSON)']:.2f} x by CPU time)",
            flush=True,
        )
        if args.jobs > 1:
            name = f"validate now --jobs {args.jobs} (same NDJSON)"
            row(run_cli(["validate", *jobs, str(ndjson)], 1), size, name, resources, ndjson)
            print(
                f"validate --jobs {args.jobs} on the same NDJSON: {rows[-1].per_second / before.per_second:.2f} x "
                "the throughput before",
                flush=True,
            )
    large = [r for r in rows if r.megabytes >= 500]
    if large:
        within = ", ".join(f"{r.name} {r.megabytes:,.0f} MB: {r.rss_mb:,.0f} MB" for r in large)
        verdict = "within" if all(r.rss_mb <= 300 for r in large) else "NOT within"
        print(f"peak RSS on inputs of 500 MB or more ({within}): {verdict} 300 MB", flush=True)


def bundle_resources(path: Path) -> int:
    """The resources of a Bundle written by `large_bundle`: its entries and itself."""
    with path.open("rb") as fh:
        return 1 + sum(1 for part in members(fh) if isinstance(part, Element))
