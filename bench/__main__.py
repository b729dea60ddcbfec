"""`python -m bench`: fhir-ns against its decode floor and the fhir.resources path, on the same files.

For each cohort size it generates (once, cached under --data) a synthetic bulk export, then runs every
measurement in its own process and prints one row per measurement, the per-stage split of fhir-ns, and
a final line of ratios against the targets of issue 5; with `--jobs N` (default 2) classify runs in one
process and with `--jobs N` alternately and the speed-up is printed, with the CPU time of the parent
process and of its workers and the load average at the start of each run (a shared machine shows in
them). `--profile` adds a cProfile of fhir-ns classify;
`--findings` times nothing and prints the share of patients with each finding (bench/findings.py);
`--report` times only `fhir-ns report` against `fhir-ns classify` (bench/report_bench.py).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.cohort import AS_OF, CohortFiles, cohort

STAGES = ("read", "group", "timeline", "rules", "write")


@dataclass(slots=True)
class Row:
    size: int
    name: str
    seconds: float
    resources: int
    megabytes: float
    rss_mb: float
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.resources / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.size:>7} {self.name:<34} {self.seconds:>8.2f} {self.per_second:>11,.0f} "
            f"{self.megabytes / self.seconds if self.seconds else 0:>8.1f} {self.rss_mb:>8.0f}  {self.note}".replace(
                "       0  ", "       -  "
            )
        )


HEADER = f"{'patients':>7} {'measurement':<34} {'seconds':>8} {'resources/s':>11} {'MB/s':>8} {'peak MB':>8}  note"


@dataclass(slots=True)
class Results:
    rows: list[Row] = field(default_factory=list)
    speed_ups: dict[int, float] = field(default_factory=dict)  # classify --jobs N against one process, by size

    def get(self, size: int, name: str) -> Row | None:
        return next((r for r in self.rows if r.size == size and r.name == name), None)


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_stage(stage: str, files: CohortFiles, args: argparse.Namespace) -> dict[str, Any]:
    """A bench.run measurement, each repeat in a fresh process; the fastest repeat."""
    runs = []
    for _ in range(1 if stage == "fhir.resources" else args.repeat):
        out = subprocess.run(
            _python_module("bench.run", stage, str(files.ndjson), "--sample", str(args.sample)),
            check=True,
            capture_output=True,
        )
        runs.append(dict(orjson.loads(out.stdout.splitlines()[-1])))
    return min(runs, key=lambda r: float(r["seconds"]))


class _TreeRss:
    """Samples the summed RSS of a process and its descendants, and the CPU time of the process itself
    (Linux /proc); 0 where unavailable."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.own_cpu = 0.0  # user + system seconds of the process itself (not its children), last sampled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self, pid: int) -> list[int]:
        pids = [pid]
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    for child in fh.read().split():
                        pids.extend(self._tree(int(child)))
        except OSError:
            pass
        return pids

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                self.own_cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
            total = 0
            for pid in self._tree(self.pid):
                try:
                    with open(f"/proc/{pid}/status") as fh:
                        for line in fh:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1])
                except OSError:
                    continue
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


@dataclass(slots=True)
class CliRun:
    """One run of fhir-ns as a user runs it."""

    seconds: float
    peak_kb: int  # peak RSS of the largest process
    tree_kb: int  # peak of the summed RSS of the process and its workers
    tail: str  # the last line on stderr
    cpu: float  # user + system seconds of the process and its workers
    parent_cpu: float  # ...of the process itself (sampled: within about 0.02 s)
    load: float  # the 1-minute load average as it started (other processes sharing the machine)

    @property
    def cpu_note(self) -> str:
        workers = self.cpu - self.parent_cpu
        split = f" (parent {self.parent_cpu:.2f} s, workers {workers:.2f} s)" if workers > 0.05 else ""
        return f"CPU {self.cpu:.2f} s{split}, load {self.load:.2f}"


def run_cli(args: list[str], repeat: int = 1, env: dict[str, str] | None = None) -> CliRun:
    """fhir-ns as a user runs it: the fastest of `repeat` runs; `env`: variables to set for it (PYTHONPATH
    for another checkout)."""
    return min((_run_cli(args, env) for _ in range(repeat)), key=lambda run: run.seconds)


def _run_cli(args: list[str], env: dict[str, str] | None = None) -> CliRun:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            _python_module("fhir_ns", *args),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **env} if env else None,
            cwd=env.get("PYTHONPATH") if env else None,  # `-m` looks in the working directory first
        )
        sampler = _TreeRss(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        tree_kb = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    if proc.returncode not in (0, 1):
        raise SystemExit(f"fhir-ns {' '.join(args)} failed with exit code {proc.returncode}: {tail}")
    peak = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime  # wait4: the process and the children it waited for
    return CliRun(seconds, peak, tree_kb, tail[0] if tail else "", cpu, min(cpu, sampler.own_cpu), load)


def speed_up(args: list[str], jobs: int, repeat: int) -> tuple[CliRun, CliRun, list[float]]:
    """`args` in one process and with `--jobs`, run alternately `repeat` times each (so that both see the
    same moments of a shared machine): the fastest of each, and the ratio of each pair."""
    pairs = [(_run_cli(args), _run_cli([*args, "--jobs", str(jobs)])) for _ in range(repeat)]
    one = min((a for a, _ in pairs), key=lambda run: run.seconds)
    many = min((b for _, b in pairs), key=lambda run: run.seconds)
    return one, many, [a.seconds / b.seconds for a, b in pairs]


def measure(size: int, files: CohortFiles, args: argparse.Namespace, results: Results) -> None:
    megabytes = files.ndjson_bytes() / 1e6
    resources = files.resources()

    def add(row: Row) -> None:
        results.rows.append(row)
        print(row, flush=True)

    classify = ["classify", str(files.ndjson), "--as-of", AS_OF.isoformat(), "--format", "json"]
    if args.speed_up_only:
        _speed_up(size, classify, resources, megabytes, args, results, add)
        return
    for stage in ("msgspec", "orjson"):
        got = run_stage(stage, files, args)
        add(Row(size, f"floor: {stage} decode", got["seconds"], got["resources"], megabytes, got["rss_kb"] / 1024))
    got = run_stage("msgspec-grouped", files, args)
    note = "+ each resource's code and value kept by patient"
    add(Row(size, "floor: msgspec + grouping", got["seconds"], got["resources"], megabytes, got["rss_kb"] / 1024, note))
    if not args.skip_naive:
        got = run_stage("fhir.resources", files, args)
        note = f"1 in {args.sample} parsed ({got['sampled']:,}), extrapolated" if got["extrapolated"] else "all parsed"
        add(Row(size, "naive: fhir.resources R4B", got["seconds"], got["resources"], megabytes, 0, note))
    startup = []
    for stage in STAGES:
        got = run_stage(stage, files, args)
        startup.append(got["startup"])
        add(Row(size, f"fhir-ns stages to {stage}", got["seconds"], got["resources"], megabytes, got["rss_kb"] / 1024))
    if args.jobs > 1:
        _speed_up(size, classify, resources, megabytes, args, results, add)
    runs: list[tuple[str, list[str], float, str]] = [
        ("classify --spill-above 0", [*classify, "--spill-above", "0"], megabytes, "every fact via SQLite"),
        (
            "classify (Bundles)",
            ["classify", str(files.bundles), "--as-of", AS_OF.isoformat(), "--format", "json"],
            _bytes(files.bundle_files()),
            f"{len(files.bundle_files())} collection Bundles",
        ),
    ]
    if args.jobs <= 1:
        runs.insert(0, ("classify", classify, megabytes, ""))
    with tempfile.TemporaryDirectory() as scratch:
        if args.convert:
            out = str(Path(scratch) / "out.json")
            convert = ["convert", str(files.ndjson), "--as-of", AS_OF.isoformat(), "-o", out]
            runs.append(("convert", convert, megabytes, "each entry first through the validation gate"))
        for name, cli_args, mb, note in runs:
            if not args.spill and "--spill-above" in cli_args:
                continue
            got = run_cli(cli_args, 1 if name == "convert" else args.repeat)
            note = f"{note}; {got.cpu_note}" if note else got.cpu_note
            add(Row(size, f"fhir-ns {name}", got.seconds, resources, mb, got.peak_kb / 1024, note))
    split = [f"startup {min(startup):.2f} s (imports, mappings)"]
    previous = 0.0
    for stage in STAGES:
        row = results.get(size, f"fhir-ns stages to {stage}")
        assert row is not None
        split.append(f"{stage} {row.seconds - previous:.2f} s")
        previous = row.seconds
    print(f"{size:>7} stage split (in process): " + ", ".join(split), flush=True)


def _speed_up(
    size: int,
    classify: list[str],
    resources: int,
    megabytes: float,
    args: argparse.Namespace,
    results: Results,
    add: Any,
) -> None:
    """classify in one process and with --jobs N, run alternately; both rows and the speed-up."""
    one, many, pairs = speed_up(classify, args.jobs, args.repeat)
    add(Row(size, "fhir-ns classify", one.seconds, resources, megabytes, one.peak_kb / 1024, one.cpu_note))
    note = f"{many.cpu_note}; largest process (all together {many.tree_kb / 1024:.0f} MB)"
    add(
        Row(size, f"fhir-ns classify --jobs {args.jobs}", many.seconds, resources, megabytes, many.peak_kb / 1024, note)
    )
    results.speed_ups[size] = one.seconds / many.seconds
    print(
        f"{size:>7} classify --jobs {args.jobs}: {one.seconds / many.seconds:.2f} x one process (fastest of "
        f"{args.repeat} each, run alternately; each pair: {', '.join(f'{r:.2f}' for r in pairs)})",
        flush=True,
    )


def _bytes(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def ratios(results: Results, sizes: list[int], jobs: int) -> str:
    """The final line: classify against the floor and fhir.resources, memory, and linearity."""
    big, small = max(sizes), min(sizes)
    parts = []
    floor = results.get(big, "floor: msgspec decode")
    classify = results.get(big, "fhir-ns classify")
    naive = results.get(big, "naive: fhir.resources R4B")
    parallel = results.get(big, f"fhir-ns classify --jobs {jobs}")
    if floor and classify:
        parts.append(f"classify/msgspec floor {floor.seconds / classify.seconds:.2f}x (target >= 0.5)")
    grouped = results.get(big, "floor: msgspec + grouping")
    if floor and grouped:
        parts.append(f"decode + grouping alone/floor {floor.seconds / grouped.seconds:.2f}x")
    if floor and parallel:
        parts.append(f"classify --jobs {jobs}/floor {floor.seconds / parallel.seconds:.2f}x (target >= 0.8)")
    if big in results.speed_ups:
        parts.append(f"classify --jobs {jobs} {results.speed_ups[big]:.2f}x one process (target >= 1.7)")
    if naive and classify:
        parts.append(f"fhir.resources/classify {naive.seconds / classify.seconds:.0f}x faster (target >= 50)")
    if classify:
        parts.append(f"classify peak RSS {classify.rss_mb:.0f} MB at {big:,} (target <= 300)")
    spilled = results.get(big, "fhir-ns classify --spill-above 0")
    if spilled and classify:
        parts.append(f"spilling everything costs {spilled.seconds / classify.seconds:.2f}x the time")
    if small != big:
        for name, what in (("fhir-ns classify", "end to end"), ("fhir-ns stages to write", "in process")):
            a, b = results.get(small, name), results.get(big, name)
            if a and b:
                per_resource = (b.seconds / b.resources) / (a.seconds / a.resources)
                parts.append(f"cost per resource {big:,} vs {small:,} {what} {per_resource:.2f} (target 0.8-1.2)")
    return "ratios: " + "; ".join(parts)


def profile(files: CohortFiles, top: int) -> None:
    """cProfile of fhir-ns classify --format json (in process) on the cohort: where the time goes."""
    from fhir_ns.cli.classify import json_element
    from fhir_ns.output import json_array
    from fhir_ns.pipeline import Config, Run, stream

    config = Config.load()
    profiler = cProfile.Profile()
    profiler.enable()
    with open(os.devnull, "wb") as sink:
        for piece in json_array(stream([str(files.ndjson)], config, AS_OF, Run(), json_element)):
            sink.write(piece)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    by_place: dict[str, float] = {}
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        by_place[_place(path, name)] = by_place.get(_place(path, name), 0.0) + row[2]
    print(f"\ncProfile of fhir-ns classify, {files.patients:,} patients: own time by module ({total:.1f} s profiled)")
    for place, seconds in sorted(by_place.items(), key=lambda item: -item[1])[:14]:
        print(f"  {seconds / total:6.1%}  {place}")
    stats.sort_stats("tottime").print_stats(top)
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


def _place(path: str, name: str) -> str:
    """fhir_ns/fhir/extract.py, or a C function by what it is (msgspec decode, dict.get...)."""
    if path == "~":
        return "C: " + name.strip("<>{}").replace("method ", "").replace("built-in ", "")
    marker = path.rfind("fhir_ns/")
    return path[marker:] if marker >= 0 else Path(path).name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--patients", type=int, nargs="+", default=[1000, 10000], help="cohort sizes (default 1000 10000)"
    )
    parser.add_argument("--huge", action="store_true", help="also 100,000 patients (~6 GB of NDJSON, slow)")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "fhir-ns-bench", help="where cohorts are kept"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="also run classify --jobs N (and validate --jobs N with --validate; 1: skip)",
    )
    parser.add_argument(
        "--no-spill", dest="spill", action="store_false", help="skip the run with every patient spilled to SQLite"
    )
    parser.add_argument(
        "--sample", type=int, default=20, help="fhir.resources: parse every K-th resource and extrapolate"
    )
    parser.add_argument("--skip-naive", action="store_true", help="skip the fhir.resources measurement")
    parser.add_argument("--repeat", type=int, default=1, help="run each measurement N times, keep the fastest")
    parser.add_argument("--convert", action="store_true", help="also run convert (slow: its validation gate)")
    parser.add_argument(
        "--speed-up-only",
        action="store_true",
        help="time only classify in one process and with --jobs N (run alternately, --repeat times each)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of classify on the smallest cohort")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--validate",
        action="store_true",
        help="instead, time fhir-ns validate on the cohorts' NDJSON joined in one file and in one Bundle",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="instead, time fhir-ns report against fhir-ns classify on each cohort (bench/report_bench.py)",
    )
    parser.add_argument(
        "--before", type=Path, help="--validate: also run the validate of the checkout in DIR on the smallest cohort"
    )
    parser.add_argument(
        "--findings",
        action="store_true",
        help="instead of timing, print the share of patients with each finding and classification",
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=AS_OF,
        help=f"--findings: evaluate as of this day (default {AS_OF}, when every course has ended)",
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.patients + ([100_000] if args.huge else [])))
    print(f"fhir-ns benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), as of {AS_OF}", flush=True)
    results = Results()
    cohorts = {}
    for size in sizes:
        started = time.perf_counter()
        files = cohorts[size] = cohort(args.data, size)
        print(
            f"cohort {size:,} patients: {files.resources():,} resources, {files.ndjson_bytes() / 1e6:,.0f} MB NDJSON "
            f"({time.perf_counter() - started:.0f} s to generate or find) in {files.root}",
            flush=True,
        )
    if args.findings:
        from bench.findings import report

        for size in sizes:
            print(report(cohorts[size], args.as_of), flush=True)
        return
    print(HEADER, flush=True)

    def add(row: Row) -> None:
        results.rows.append(row)
        print(row, flush=True)

    if args.validate:
        from bench.validate_bench import measure as measure_validate

        measure_validate(cohorts, args, add)
        if args.json:
            args.json.write_bytes(orjson.dumps([_row(r) for r in results.rows], option=orjson.OPT_INDENT_2))
        return
    if args.report:
        from bench.report_bench import measure as measure_report

        for line in measure_report(cohorts, args, add):
            print(line, flush=True)
        if args.json:
            args.json.write_bytes(orjson.dumps([_row(r) for r in results.rows], option=orjson.OPT_INDENT_2))
        return
    for size in sizes:
        measure(size, cohorts[size], args, results)
    print(ratios(results, sizes, args.jobs), flush=True)
    if args.json:
        args.json.write_bytes(orjson.dumps([_row(r) for r in results.rows], option=orjson.OPT_INDENT_2))
    if args.profile:
        profile(cohorts[min(sizes)], 30)


def _row(row: Row) -> dict[str, Any]:
    return {
        "patients": row.size,
        "measurement": row.name,
        "seconds": row.seconds,
        "resources": row.resources,
        "megabytes": row.megabytes,
        "rss_mb": row.rss_mb,
        "note": row.note,
    }


if __name__ == "__main__":
    main()
