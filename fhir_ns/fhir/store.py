"""Where the collector keeps what it read until each patient is assembled: compact, and spilled to disk.

Each resource becomes one `Stored` record (its fact, where it came from, what was wrong with it),
encoded as msgpack and appended to the buffer of its patient reference: about a tenth of the
resource's JSON, and no Python object per record. Above a configurable size the buffers go to an
SQLite file (`Spill`) and are read back one patient at a time, so memory stays bounded whatever the
size of the cohort. The same encoded buffers are what `--jobs` sends between processes: a worker's
records as one buffer (`Exported`), which the parent keeps whole and indexes by reference (`load`), so
merging what the workers read costs a few entries per patient, not a copy of every record.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, compress
from pathlib import Path
from typing import Any

import msgspec

from fhir_ns.fhir import shapes
from fhir_ns.timeline.model import (
    ConditionFact,
    DrugExposure,
    GeneticResult,
    Intolerance,
    Measurement,
    Panel,
    ProcedureFact,
    Taper,
)

NO_PATIENT = ""  # the bucket of records without a subject reference
SPILL_BATCH = 20_000  # over the limit, records go to disk in batches of at least this many
RUN_BATCH = 256  # records are encoded this many at a time (< 65536: a msgpack array16 at most)


class Pending(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="P"):
    """A drug exposure whose drug is named by a Medication resource found elsewhere in the input."""

    medication_ref: str
    resource: shapes.MedicationStatement | shapes.MedicationRequest | shapes.MedicationAdministration


Payload = (
    Measurement
    | DrugExposure
    | Taper
    | ConditionFact
    | GeneticResult
    | Panel
    | ProcedureFact
    | Intolerance
    | Pending
    | None
)
# (severity, code, message, element, resource); the location is the record's own
StoredProblem = tuple[str, str, str, str | None, str | None]


class Stored(msgspec.Struct, array_like=True, gc=False):
    """One resource as the collector keeps it: its fact and everything needed to settle duplicates."""

    seq: int  # reading order (unit << 32 | order within the unit)
    rtype: str
    rid: str | None
    source: str | None  # None when it is the payload's own source
    stamp: str  # meta.lastUpdated
    digest: int  # of its JSON text: identical copies
    file: int  # index in the unit's file names
    entry: int | None
    line: int | None
    payload: Payload
    problems: list[StoredProblem]

    @property
    def keyed(self) -> bool:
        return self.rid is not None

    @property
    def reference(self) -> str:
        """'Observation/123', or the fullUrl or location of a resource without an id."""
        if self.source is not None:
            return self.source
        assert self.payload is not None and not isinstance(self.payload, Pending)
        return self.payload.source


_encoder = msgspec.msgpack.Encoder()
_records = msgspec.msgpack.Decoder(list[Stored])


Buffer = bytes | bytearray | memoryview


def decode_records(count: int, blob: Buffer) -> list[Stored]:
    """The records of a buffer of `count` encoded records."""
    return _records.decode(b"\xdd" + count.to_bytes(4, "big") + blob)  # a msgpack array32 of them


@dataclass(slots=True)
class Exported:
    """Everything one store held, to be loaded by another: the encoded records of every reference in
    one buffer, and what the duplicate check needs."""

    blob: bytes | mmap.mmap  # (--jobs: a worker's file, mapped)
    index: list[tuple[str, int, int]]  # (reference, records, bytes) of each stretch of the buffer, in order
    hashes: array[int]  # the source hash of each keyed record...
    buckets: array[int]  # ...and the reference (index in `names`) it is filed under
    names: list[str]
    unkeyed: set[str]  # references holding a record without an id
    repeated: set[int]  # hashes occurring more than once among these records


@dataclass(frozen=True, slots=True)
class SpillLimit:
    """Spill to disk above this many patients in memory, or this many megabytes of encoded records."""

    patients: int | None = None
    megabytes: float | None = None

    @classmethod
    def parse(cls, text: str) -> SpillLimit:
        """'5000' (patients), '200MB' or '1GB'."""
        value = text.strip().upper()
        for suffix, factor in (("GB", 1024.0), ("MB", 1.0)):
            if value.endswith(suffix):
                return cls(megabytes=float(value[: -len(suffix)]) * factor)
        return cls(patients=int(value))

    def exceeded(self, patients: int, size: int) -> bool:
        return (self.patients is not None and patients > self.patients) or (
            self.megabytes is not None and size > self.megabytes * 1024 * 1024
        )


class Spill:
    """Encoded records on disk (SQLite, a temporary file removed on close), by patient reference."""

    def __init__(self, directory: str | None = None) -> None:
        fd, name = tempfile.mkstemp(prefix="fhir-ns-spill-", suffix=".sqlite", dir=directory)
        os.close(fd)
        self.path = Path(name)
        self.db = sqlite3.connect(name, isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "CREATE TABLE piece (ref TEXT NOT NULL, count INTEGER NOT NULL, blob BLOB NOT NULL);"
        )
        self.indexed = False
        self.refs: set[str] = set()

    def write(self, pieces: Iterable[tuple[str, int, Buffer]]) -> None:
        """Append (reference, records, encoded records) pieces."""
        refs = self.refs

        def rows() -> Iterator[tuple[str, int, Buffer]]:
            for ref, count, blob in pieces:
                refs.add(ref)
                yield ref, count, blob

        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO piece VALUES (?, ?, ?)", rows())
        self.db.execute("COMMIT")

    def pieces(self, ref: str) -> list[tuple[int, bytes]]:
        return self.db.execute("SELECT count, blob FROM piece WHERE ref = ? ORDER BY rowid", (ref,)).fetchall()

    def index(self) -> None:
        if not self.indexed:
            self.db.execute("CREATE INDEX piece_ref ON piece (ref)")
            self.indexed = True

    def reopen(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None)

    def duplicated(self, hashes: Iterable[int]) -> set[int]:
        """The hashes that occur more than once, counted on disk."""
        self.db.execute("CREATE TEMP TABLE seen (h INTEGER NOT NULL)")
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO seen VALUES (?)", ((h,) for h in hashes))
        self.db.execute("COMMIT")
        rows = self.db.execute("SELECT h FROM seen GROUP BY h HAVING COUNT(*) > 1").fetchall()
        self.db.execute("DROP TABLE seen")
        return {h for (h,) in rows}

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


class RecordStore:
    """Encoded records by patient reference, in memory until `limit`, then spilled to disk.

    Records are filed one by one (`add`), or taken in as another store exported them (`load`): then
    the exported buffers are kept whole and each reference points at its stretches of them.
    """

    def __init__(self, limit: SpillLimit | None = None) -> None:
        self.limit = limit
        self.spill: Spill | None = None
        self._buckets: dict[str, bytearray] = {}
        self._counts: dict[str, int] = {}
        self._blobs: list[bytes | mmap.mmap] = []  # buffers loaded whole...
        self._stretches: dict[str, list[tuple[int, int, int, int]]] = {}  # ...ref -> (blob, start, end, records)
        self._size = 0
        self._held = 0  # records in memory
        self._numbers: dict[str, int] = {}  # reference -> bucket number, for the duplicate index
        self._names: list[str] = []
        self._hashes: array[int] = array("q")  # hash of the source of each keyed record...
        self._hash_buckets: array[int] = array("l")  # ...and the bucket it is in
        self._hash_refs: list[str] = []  # (the references of the hashes not yet numbered)
        # (hashes, buckets, bucket references) of the keyed records: this store's own, then each loaded store's
        self._keyed: list[tuple[array[int], array[int], list[str]]] = [(self._hashes, self._hash_buckets, self._names)]
        # While records are only loaded and nothing is on disk, the hashes seen so far and those seen
        # twice, counted as each store's records come in (None once that no longer holds)
        self._seen: set[int] | None = set()
        self._repeated: set[int] = set()
        self.unkeyed: set[str] = set()  # references holding a record without an id (read in another order)
        # records not yet encoded: runs of consecutive records of one reference, encoded a run at a time
        self._runs: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._run: list[tuple[Any, ...]] = []
        self._run_ref: str | None = None
        self._pending = 0

    def _bucket(self, ref: str) -> bytearray:
        blob = self._buckets.get(ref)
        if blob is None:
            blob = self._buckets[ref] = bytearray()
            self._counts[ref] = 0
            self._number(ref)
        return blob

    def _number(self, ref: str) -> int:
        number = self._numbers.get(ref)
        if number is None:
            number = self._numbers[ref] = len(self._names)
            self._names.append(ref)
        return number

    def add(self, ref: str, record: tuple[Any, ...], source_hash: int | None) -> None:
        """File a record (the fields of a `Stored`, in order) under its patient reference."""
        if ref == self._run_ref:
            self._run.append(record)
        else:
            self._run = [record]
            self._run_ref = ref
            self._runs.append((ref, self._run))
        if source_hash is not None:
            self._hashes.append(source_hash)
            self._hash_refs.append(ref)
        else:
            self.unkeyed.add(ref)
        self._pending += 1
        if self._pending >= RUN_BATCH:
            self._encode_runs()

    def _encode_runs(self) -> None:
        """Encode the records added since last time onto their buffers: one msgpack call per run of
        records of one reference (a bulk export lists a patient's resources of a type together)."""
        if not self._pending:
            return
        for ref, run in self._runs:
            blob = self._buckets.get(ref)
            if blob is None:
                blob = self._bucket(ref)
            encoded = _encoder.encode(run)
            blob += memoryview(encoded)[1 if len(run) < 16 else 3 :]  # without the array's header
            self._counts[ref] += len(run)
            self._size += len(encoded)
        numbers = self._numbers
        if self._hash_refs:
            self._hash_buckets.extend([numbers[ref] for ref in self._hash_refs])
            self._seen = None  # these hashes are counted when asked (`contested`)
        self._held += self._pending
        self._runs, self._run, self._run_ref, self._pending = [], [], None, 0
        self._hash_refs = []
        if self.limit is not None and self._held >= SPILL_BATCH and self._over_limit():
            self.flush()

    def _over_limit(self) -> bool:
        return self.limit is not None and self.limit.exceeded(len(self._buckets) + len(self._stretches), self._size)

    def flush(self) -> None:
        """Move every buffer in memory to disk."""
        self._encode_runs()
        if not self._buckets and not self._stretches:
            return
        if self.spill is None:
            self.spill = Spill()
        self.spill.write(self._in_memory())
        self._buckets, self._counts, self._size, self._held = {}, {}, 0, 0
        self._blobs, self._stretches = [], {}
        self._seen = None  # from now on duplicates are counted on disk (`contested`)

    def _in_memory(self) -> Iterator[tuple[str, int, Buffer]]:
        """(reference, records, encoded records) of everything in memory, by reference in the order first
        seen, each reference's in reading order."""
        for ref in self._names:
            yield from self._pieces_in_memory(ref)

    def _pieces_in_memory(self, ref: str) -> Iterator[tuple[str, int, Buffer]]:
        for blob, start, end, count in self._stretches.get(ref, ()):
            yield ref, count, memoryview(self._blobs[blob])[start:end]
        if ref in self._buckets:
            yield ref, self._counts[ref], self._buckets[ref]

    def refs(self) -> list[str]:
        """Every patient reference with records, in the order first seen."""
        self._encode_runs()
        return list(self._names)

    def records(self, ref: str) -> list[Stored]:
        """The records of one reference, in reading order."""
        self._encode_runs()
        out: list[Stored] = []
        if self.spill is not None and ref in self.spill.refs:
            for count, blob in self.spill.pieces(ref):
                out.extend(decode_records(count, blob))
        stretches = self._stretches.get(ref)
        if stretches is not None:
            blobs = self._blobs
            if len(stretches) == 1:
                number, start, end, count = stretches[0]
                out.extend(decode_records(count, memoryview(blobs[number])[start:end]))
            else:  # one decoding for all of them
                joined = b"".join([memoryview(blobs[number])[start:end] for number, start, end, _ in stretches])
                out.extend(decode_records(sum(stretch[3] for stretch in stretches), joined))
        if ref in self._buckets:
            out.extend(decode_records(self._counts[ref], self._buckets[ref]))
        return out

    def contested(self) -> tuple[set[int], set[str]]:
        """Source hashes seen more than once (perhaps one resource read twice), and the references holding them."""
        hashes = self._duplicated()
        if not hashes:
            return set(), set()
        holding: set[str] = set()
        for source_hashes, buckets, names in self._keyed:
            holding.update([names[b] for b in compress(buckets, map(hashes.__contains__, source_hashes))])
        return hashes, holding

    def _duplicated(self) -> set[int]:
        self._encode_runs()
        if self._seen is not None:  # counted as the records were loaded
            return self._repeated
        every = chain.from_iterable(source_hashes for source_hashes, _, _ in self._keyed)
        if self.spill is not None:
            return self.spill.duplicated(every)
        counted = Counter(every)  # counted in C
        if len(counted) == sum(len(source_hashes) for source_hashes, _, _ in self._keyed):
            return set()
        return {h for h, n in counted.items() if n > 1}

    def export(self) -> Exported:
        """Everything held, as one buffer to `load` into another store (this one's file on disk removed)."""
        self._encode_runs()
        index: list[tuple[str, int, int]] = []
        pieces: list[Buffer] = []
        for ref in self._names:
            if self.spill is not None and ref in self.spill.refs:
                for count, blob in self.spill.pieces(ref):
                    index.append((ref, count, len(blob)))
                    pieces.append(blob)
            for _, count, piece in self._pieces_in_memory(ref):
                index.append((ref, count, len(piece)))
                pieces.append(piece)
        hashes, buckets = array("q"), array("l")
        for source_hashes, source_buckets, names in self._keyed:
            numbers = [self._numbers[name] for name in names]
            hashes.extend(source_hashes)
            buckets.extend(map(numbers.__getitem__, source_buckets))
        counted = Counter(hashes)  # (one unit's: in memory)
        repeated = {h for h, n in counted.items() if n > 1} if len(counted) < len(hashes) else set()
        self.close()
        blob = b"".join(pieces)
        return Exported(blob, index, hashes, buckets, self._names, self.unkeyed, repeated)

    def load(self, exported: Exported) -> None:
        """Take in the records another store exported (read after those held here): its buffer kept whole,
        each reference pointing at its stretches of it."""
        self._encode_runs()
        number = len(self._blobs)
        self._blobs.append(exported.blob)
        stretches = self._stretches
        start = 0
        for ref, count, length in exported.index:
            self._number(ref)
            found = stretches.get(ref)
            if found is None:
                found = stretches[ref] = []
            found.append((number, start, start + length, count))
            start += length
        self._size += len(exported.blob)
        self._held += sum(count for _, count, _ in exported.index)
        if self._seen is not None:
            # read before, or twice in this store: one pass over its hashes each, whatever was read before
            self._repeated |= self._seen.intersection(exported.hashes)
            self._repeated |= exported.repeated
            self._seen.update(exported.hashes)
        self._keyed.append((exported.hashes, exported.buckets, exported.names))
        self.unkeyed |= exported.unkeyed
        if self._over_limit():
            self.flush()

    def seal(self) -> None:
        """Reading is over: what is still over the limit goes to disk, made quick to find by reference."""
        self._encode_runs()
        if self._over_limit():
            self.flush()
        if self.spill is not None:
            self.spill.index()

    def forget_seen(self) -> None:
        """Let go of the hashes counted as records were loaded (what they told is kept): a moment when the
        time this takes (about 0.1 s a million) is not waited for."""
        if self._seen:
            self._seen = set()

    def reopen(self) -> None:
        """In a forked process: a connection of its own to the records on disk."""
        if self.spill is not None:
            self.spill.reopen()

    def close(self) -> None:
        """Remove the records on disk, and let go of the buffers loaded."""
        if self.spill is not None:
            self.spill.close()
            self.spill = None
        self._blobs, self._stretches = [], {}
