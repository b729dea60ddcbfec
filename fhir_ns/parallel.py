"""`--jobs N`: read and evaluate in N worker processes, with the same output as one process.

Reading: the input is cut into units (NDJSON files between lines, other files whole); each worker
reads units with a FactCollector of its own and sends back what it read (`Part`): its compact records
as one buffer in a file the parent maps into memory, the rest pickled to a file of its own (a pipe
would hold the worker until the parent had read it all); only the unit's number goes through the
pool's pipe. The parent merges the parts in reading order, indexing each part's buffer by patient
reference rather than copying it, so duplicates, aliases, line numbers and the order of problems come
out as one process would have them.
Evaluating: workers forked from the parent see every record without a copy; each assembles,
classifies and renders a contiguous range of patients, pickled to a file as well, and the parent
writes the ranges in order as they come. Processes are forked (POSIX only); the pools are closed and
joined, not terminated, so that no worker is stopped by a signal.

The pipeline hands in how a range of patients is evaluated (`Evaluate`): this module reads and
distributes, and knows nothing of the rules.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.pool import Pool
from typing import TYPE_CHECKING, Any, TypeVar

from fhir_ns.fhir import reader
from fhir_ns.fhir.extract import FactCollector, Part, PatientInput
from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import Unit, expand_paths, input_of, split_units
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.progress import NO_PROGRESS, Progress
from fhir_ns.terminology import Terminology

if TYPE_CHECKING:
    from fhir_ns.pipeline import Run
    from fhir_ns.validate.gate import EntryGate  # (imported only by the commands that use it)

T = TypeVar("T")
# patients -> (rendered results, refused patients, problems, number evaluated)
Evaluate = Callable[[Iterable[PatientInput]], tuple[list[T], list[PatientInput], list[Problem], int]]
UNITS_PER_JOB = 8  # a small input is cut into at least this many units per worker, so none waits long
SMALLEST_UNIT = 1024**2  # bytes
SMALLEST_RANGE = 25  # patients: the last ranges evaluated are this small, so no worker waits long on another
_state: dict[str, Any] = {}  # what the forked workers inherit


def stream_parallel(
    inputs: Sequence[str],
    terminology: Terminology,
    evaluate: Evaluate[T],
    out: Run,
    gate: EntryGate | None,
    jobs: int,
    spill: SpillLimit | None,
    skip_unreadable: bool = False,
    progress: Progress = NO_PROGRESS,
) -> Iterator[T]:
    """`pipeline.stream` in `jobs` worker processes: each sound patient's result, rendered by `evaluate`."""
    context = multiprocessing.get_context("fork")
    units = split_units(inputs, unit_bytes(inputs, jobs))
    collector = FactCollector(terminology, out.problems, spill, skip_unreadable)
    collector.inputs = input_of(inputs)
    collector.units = []
    buffers = tempfile.mkdtemp(prefix="fhir-ns-parts-")
    _state.update(terminology=terminology, gate=gate, buffers=buffers)
    try:
        with context.Pool(jobs) as pool:
            offset = 0  # lines in the pieces of the current file merged so far
            for unit, index in zip(units, pool.imap(_read, enumerate(units)), strict=True):
                part = take_part(buffers, index)
                if unit.start == 0:  # a file begins (a file named twice is numbered from its start again)
                    offset = 0
                collector.absorb(part, offset)
                offset += part.lines
                progress.reading(unit.size())
            finish(pool)
        out.counts = collector.counts
        cohort = collector.prepare()
        _state.update(collector=collector, cohort=cohort, evaluate=evaluate)
        progress.close()  # no bar is being drawn while the workers are forked
        gc.freeze()  # the workers' collections leave what they inherit alone (time, and pages not copied)
        with context.Pool(jobs, initializer=collector.store.reopen) as pool:
            progress.evaluating(len(cohort.patients))
            spans = ranges(len(cohort.patients), jobs)
            for first, last in pool.imap(_evaluate, spans):
                outputs, refused, problems, evaluated = take(buffers, f"range-{first}")
                progress.evaluated(last - first)
                collector.store.forget_seen()  # once the workers are busy
                out.refused.extend(refused)
                out.problems.extend(problems)
                out.evaluated += evaluated
                yield from outputs
            finish(pool)
    finally:
        gc.unfreeze()
        collector.store.close()
        shutil.rmtree(buffers, ignore_errors=True)
        _state.clear()


def finish(pool: Pool) -> None:
    """Let the workers end once their work is done, rather than stopping them by signal as leaving the pool
    does (a worker stopped as it takes the lock of the task queue has been seen to leave the run hanging)."""
    pool.close()
    pool.join()


def unit_bytes(inputs: Sequence[str], jobs: int) -> int:
    """The size of the units the input is cut into: the reader's, or smaller for a small input."""
    total = 0
    for name in expand_paths(inputs):
        with contextlib.suppress(OSError):  # (reported when it is read)
            total += os.stat(name).st_size
    return max(min(SMALLEST_UNIT, reader.UNIT_BYTES), min(reader.UNIT_BYTES, total // (jobs * UNITS_PER_JOB)))


def ranges(count: int, jobs: int) -> list[tuple[int, int]]:
    """Contiguous ranges of `count` patients for `jobs` workers: each a share of what is left (large ones
    first, small ones last), so that the workers finish together."""
    out = []
    start = 0
    while start < count:
        end = min(count, start + max(SMALLEST_RANGE, -(-(count - start) // (2 * jobs))))
        out.append((start, end))
        start = end
    return out


def _read(job: tuple[int, Unit]) -> int:
    """In a worker: read one unit."""
    index, unit = job
    gate: EntryGate | None = _state["gate"]
    collector = FactCollector(_state["terminology"], [])
    collector.begin_unit(index)
    lines: dict[Unit, int] = {}
    collector.read([unit], gate, lines)
    part = collector.export(index, lines[unit] if unit in lines else unit.lines())  # (counted unless cut short)
    put_part(_state["buffers"], index, part)
    return index


def put_part(directory: str, index: int, part: Part) -> None:
    """In a worker: hand the Part read from unit `index` to the parent (its records' buffer in a file of its own,
    to be mapped rather than copied)."""
    with open(os.path.join(directory, str(index)), "wb") as fh:
        fh.write(part.records.blob)
    part.records.blob = b""  # sent by the file
    put(directory, f"part-{index}", part)


def take_part(directory: str, index: int) -> Part:
    """In the parent: the Part a worker `put_part`, its records' buffer mapped into memory."""
    part: Part = take(directory, f"part-{index}")
    part.records.blob = _mapped(os.path.join(directory, str(part.unit)))
    return part


def _mapped(path: str) -> bytes | mmap.mmap:
    """A worker's buffer of records, mapped into memory (and the file removed: the mapping keeps it)."""
    try:
        with open(path, "rb") as fh:
            if not os.fstat(fh.fileno()).st_size:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    finally:
        os.unlink(path)


def _evaluate(span: tuple[int, int]) -> tuple[int, int]:
    """In a worker: assemble, classify and render one range of patients."""
    collector: FactCollector = _state["collector"]
    cohort = _state["cohort"]
    assembled = (collector.assemble(pid, refs, cohort.settled) for pid, refs in cohort.patients[span[0] : span[1]])
    evaluate: Evaluate[Any] = _state["evaluate"]
    put(_state["buffers"], f"range-{span[0]}", evaluate(p for p in assembled if p is not None))
    return span


def put(directory: str, name: str, value: Any) -> None:
    """In a worker: hand `value` to the parent through a file, written at once (where a pipe would hold the
    worker until the parent has read it all)."""
    with open(os.path.join(directory, name), "wb") as fh:
        pickle.dump(value, fh, pickle.HIGHEST_PROTOCOL)


def take(directory: str, name: str) -> Any:
    """In the parent: what a worker `put` (and its file removed)."""
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    finally:
        os.unlink(path)
