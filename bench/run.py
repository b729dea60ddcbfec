"""One measurement, run in its own process so its peak memory is its own: `python -m bench.run STAGE DIR`.

Prints one JSON object: the stage, seconds, resources it handled, and the process's peak RSS.

Stages:
- `msgspec`, `orjson`: the decode floor (bench/floor.py); `msgspec-grouped`: the decode floor plus the
  least Python per resource (bench/floor.py).
- `fhir.resources`: R4B model parsing of a sample of every resource type (every k-th line), with the
  time per resource type extrapolated to the whole file; `--sample K`.
- `read`, `group`, `timeline`, `rules`, `write`: fhir-ns in process, each stage including the ones
  before it (read: the reader's typed decoding; group: compact facts filed by patient, then each
  patient's facts assembled; timeline: the rule set chosen and each patient's timeline built (with
  the build the choice needs); rules: classification and findings; write: the classify JSON output),
  so the time of a stage is the difference between its run and the one before.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.cohort import AS_OF
from bench.floor import msgspec_floor, msgspec_grouped, orjson_floor


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def ndjson_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.ndjson"))


def naive(directory: Path, sample: int) -> tuple[int, dict[str, Any]]:
    """fhir.resources R4B: parse every `sample`-th line of each file; extrapolate by resource type."""
    from fhir.resources.R4B import get_fhir_model_class

    total_seconds = 0.0
    total = 0
    parsed = 0
    for path in ndjson_files(directory):
        model = get_fhir_model_class(path.stem)
        spent = 0.0
        lines = chosen = 0
        with path.open("rb") as fh:
            for line in fh:
                lines += 1
                if (lines - 1) % sample:
                    continue
                started = time.perf_counter()
                model.model_validate_json(line)
                spent += time.perf_counter() - started
                chosen += 1
        total_seconds += spent * lines / chosen
        total += lines
        parsed += chosen
    return total, {"seconds": total_seconds, "sampled": parsed, "extrapolated": sample > 1}


def fhir_ns_stage(stage: str, directory: Path, as_of: date) -> tuple[int, float]:
    """Run fhir-ns up to and including `stage`: (resources read, seconds after imports and mappings)."""
    from fhir_ns.cli import cli  # noqa: F401 (everything the command imports, as in a real run)
    from fhir_ns.pipeline import Config

    config = Config.load()
    started = time.perf_counter()
    return _stage(stage, directory, as_of, config), time.perf_counter() - started


def _stage(stage: str, directory: Path, as_of: date, config: Any) -> int:
    from fhir_ns.cli.classify import json_element
    from fhir_ns.fhir.problems import Problem
    from fhir_ns.fhir.reader import scan, whole_files
    from fhir_ns.output import json_array
    from fhir_ns.pipeline import Run, evaluate_each, read_input
    from fhir_ns.rules import build_timeline

    inputs = [str(directory)]
    problems: list[Problem] = []
    if stage == "read":
        return sum(1 for _ in scan(whole_files(inputs), problems, typed=True))
    collector = read_input(inputs, config, problems)
    resources = sum(collector.counts.values())
    patients = collector.each_patient()
    if stage == "group":
        for _ in patients:
            pass
    elif stage == "timeline":
        for patient in patients:
            if not patient.refused:
                build_timeline(patient.facts, config.rulesets, config.terminology, as_of)
    elif stage == "rules":
        for _ in evaluate_each(patients, config, as_of, Run(), lambda result: result):
            pass
    else:
        with open(os.devnull, "wb") as sink:
            for piece in json_array(evaluate_each(patients, config, as_of, Run(), json_element)):
                sink.write(piece)
    return resources


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("directory", type=Path, help="the cohort's NDJSON directory")
    parser.add_argument("--sample", type=int, default=20, help="fhir.resources: parse every K-th line")
    args = parser.parse_args(argv)
    extra: dict[str, Any] = {}
    started = time.perf_counter()
    stages: dict[str, Callable[[], int]] = {
        "msgspec": lambda: msgspec_floor(ndjson_files(args.directory)),
        "orjson": lambda: orjson_floor(ndjson_files(args.directory)),
        "msgspec-grouped": lambda: msgspec_grouped(ndjson_files(args.directory)),
    }
    if args.stage in stages:
        resources = stages[args.stage]()
        seconds = time.perf_counter() - started
    elif args.stage == "fhir.resources":
        resources, extra = naive(args.directory, args.sample)
        seconds = extra.pop("seconds")
    else:
        resources, seconds = fhir_ns_stage(args.stage, args.directory, AS_OF)
        extra["startup"] = time.perf_counter() - started - seconds
    print(
        orjson.dumps(
            {"stage": args.stage, "seconds": seconds, "resources": resources, "rss_kb": peak_rss_kb(), **extra}
        ).decode()
    )


if __name__ == "__main__":
    main()
