"""`validate --jobs N`: the layers run in N worker processes, with the same report as one process.

The input is cut into units as `classify --jobs` cuts it (`fhir_ns.fhir.reader.split_units`: uncompressed
NDJSON files between lines, other files whole). Each worker takes a unit through layers 1-4 and 6 and feeds
its entries to an input profile (layer 5) of its own; what the layers find is recorded in the order found
(`spool.Recorder`) rather than spooled, and the profile's collector is exported as a Part, both handed back
through files (`fhir_ns.parallel.put`). Each piece's lines are numbered from the start of its file (the parent
counts the line ends of the pieces before as it hands the pieces out). The parent takes the units in reading
order: it absorbs each Part into its own input profile and replays what was recorded into its Spool, so that
every issue gets the place and the order reading in one process gives it. The input profile's problems with
the whole come, as ever, once every unit is in. Standard input is read in one process (worker processes
cannot read it).
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fhir_ns.fhir.reader import Unit, expand_paths, split_units
from fhir_ns.parallel import finish, put, put_part, take, take_part, unit_bytes
from fhir_ns.progress import NO_PROGRESS, Progress
from fhir_ns.validate.input_profile import InputProfile
from fhir_ns.validate.issues import Layer
from fhir_ns.validate.runner import SPILL, FileReport, line_breaks
from fhir_ns.validate.spool import Recorder, Spool

if TYPE_CHECKING:
    from fhir_ns.validate.runner import Validation, Validator

_state: dict[str, Any] = {}  # what the forked workers inherit


@dataclass(slots=True)
class Found:
    """What a worker hands back about one unit besides its Part."""

    recorded: Recorder
    resources: int
    unreadable: bool
    seconds: dict[Layer, float]  # time spent in each layer


def validate_parallel(
    validator: Validator, paths: Sequence[str], jobs: int, progress: Progress = NO_PROGRESS
) -> Validation:
    """`Validator.validate` in `jobs` worker processes (no progress display: see `pipeline.stream`)."""
    progress.close()
    units = split_units(expand_paths(paths), unit_bytes(paths, jobs))
    spool = Spool()
    profile = InputProfile(validator.terminology, SPILL)
    profile.collector.units = []
    reports: list[FileReport] = []
    buffers = tempfile.mkdtemp(prefix="fhir-ns-validate-")
    _state.update(validator=validator, buffers=buffers)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for unit, index in zip(units, pool.imap(_validate, _numbered(units)), strict=True):
                part = take_part(buffers, index)
                found: Found = take(buffers, f"found-{index}")
                if unit.start == 0:  # a file begins (a file named twice is read twice, as in one process)
                    reports.append(FileReport(unit.name, spool.new_report(), spool))
                report = reports[-1]
                profile.collector.absorb(part, 0)  # (numbered in the file already)
                spool.replay(report.index, found.recorded)
                report.resources += found.resources
                report.unreadable |= found.unreadable
                for layer, seconds in found.seconds.items():
                    validator.seconds[layer] += seconds
            finish(pool)
        return validator.finish(profile, spool, reports)
    finally:
        shutil.rmtree(buffers, ignore_errors=True)
        _state.clear()


def _numbered(units: list[Unit]) -> Iterator[tuple[int, Unit, int]]:
    """Each unit with its index and the number in its file of its first line (the lines of the pieces before
    it counted here, as the pool hands the units out, so that no line number has to be changed afterwards)."""
    first = 1
    for index, unit in enumerate(units):
        if unit.start == 0:
            first = 1
        yield index, unit, first
        if unit.end is not None:
            try:
                with open(unit.name, "rb") as fh:
                    fh.seek(unit.start)
                    first += line_breaks(fh.read(unit.end - unit.start))
            except OSError:
                pass  # (the worker says what is wrong with the file)


def _validate(job: tuple[int, Unit, int]) -> int:
    """In a worker: one unit through the layers."""
    index, unit, first = job
    validator: Validator = _state["validator"]
    recorder = Recorder()
    report = FileReport(unit.name, 0, recorder)
    profile = InputProfile(validator.terminology)  # (a unit is small: no spill)
    profile.collector.begin_unit(index)
    before = dict(validator.seconds)
    if unit.end is None:
        validator.read_file(unit.name, report, profile)
    else:
        validator.read_piece(unit.name, unit.start, unit.end, first, report, profile)
    seconds = {layer: validator.seconds[layer] - before[layer] for layer in before}
    put_part(_state["buffers"], index, profile.collector.export(index, 0))
    put(_state["buffers"], f"found-{index}", Found(recorder, report.resources, report.unreadable, seconds))
    return index
