"""`validate --jobs N`: the layers run in N worker processes, with the same report as one process.

The input is cut into units as `classify --jobs` cuts it (`fhir_ns.fhir.reader.split_units`: uncompressed
NDJSON files between lines, other files whole). Each worker takes a unit through layers 1-4 and 6 and feeds
its entries to an input profile (layer 5) of its own; what the layers find is recorded in the order found
(`spool.Recorder`) rather than spooled, and the profile's collector is exported as a Part, both handed back
through files (`fhir_ns.parallel.put`). The parent takes the units in reading order: it absorbs each Part
into its own input profile (line numbers moved by the lines of the pieces before), and replays what was
recorded into its Spool, renumbered the same way, so that every issue gets the place and the order reading
in one process gives it. The input profile's problems with the whole come, as ever, once every unit is in.
Standard input is read in one process (worker processes cannot read it).
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fhir_ns.fhir.reader import Unit, expand_paths, split_units
from fhir_ns.parallel import finish, put, put_part, take, take_part, unit_bytes
from fhir_ns.progress import NO_PROGRESS, Progress
from fhir_ns.validate.input_profile import InputProfile
from fhir_ns.validate.issues import Layer
from fhir_ns.validate.spool import Recorder, Spool

if TYPE_CHECKING:
    from fhir_ns.validate.runner import FileReport, Validation, Validator

_state: dict[str, Any] = {}  # what the forked workers inherit


@dataclass(slots=True)
class Found:
    """What a worker hands back about one unit besides its Part."""

    recorded: Recorder
    lines: int  # lines in the unit (a piece of an NDJSON file): the next piece's numbering starts after
    resources: int
    unreadable: bool
    seconds: dict[Layer, float]  # time spent in each layer


def validate_parallel(
    validator: Validator, paths: Sequence[str], jobs: int, progress: Progress = NO_PROGRESS
) -> Validation:
    """`Validator.validate` in `jobs` worker processes (no progress display: see `pipeline.stream`)."""
    from fhir_ns.validate.runner import SPILL, FileReport

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
            offset = 0  # lines in the pieces of the current file before this one
            for unit, index in zip(units, pool.imap(_validate, enumerate(units)), strict=True):
                part = take_part(buffers, index)
                found: Found = take(buffers, f"found-{index}")
                if unit.start == 0:  # a file begins (a file named twice is read twice, as in one process)
                    reports.append(FileReport(unit.name, spool.new_report(), spool))
                    offset = 0
                report = reports[-1]
                profile.collector.absorb(part, offset)
                spool.replay(report.index, found.recorded, offset)
                report.resources += found.resources
                report.unreadable |= found.unreadable
                for layer, seconds in found.seconds.items():
                    validator.seconds[layer] += seconds
                offset += found.lines
            finish(pool)
        return validator.finish(profile, spool, reports)
    finally:
        shutil.rmtree(buffers, ignore_errors=True)
        _state.clear()


def _validate(job: tuple[int, Unit]) -> int:
    """In a worker: one unit through the layers."""
    from fhir_ns.validate.runner import FileReport

    index, unit = job
    validator: Validator = _state["validator"]
    recorder = Recorder()
    report = FileReport(unit.name, 0, recorder)
    profile = InputProfile(validator.terminology)  # (a unit is small: no spill)
    profile.collector.begin_unit(index)
    before = dict(validator.seconds)
    if unit.end is None:
        validator.read_file(unit.name, report, profile)
        lines = 0
    else:
        lines = validator.read_piece(unit.name, unit.start, unit.end, report, profile)
    seconds = {layer: validator.seconds[layer] - before[layer] for layer in before}
    put_part(_state["buffers"], index, profile.collector.export(index, lines))
    put(_state["buffers"], f"found-{index}", Found(recorder, lines, report.resources, report.unreadable, seconds))
    return index
