"""`validate --jobs N`: worker processes take pieces of the input through the layers; the report must be the
one a single process gives, byte for byte, whatever lies in which piece."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.cohort import cohort
from fhir_ns.fhir import reader
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator
from fhir_ns.validate.render import bundle, text
from fhir_ns.validate.spool import Recorder
from tests.test_fast_path import crossing_export, invoke
from tests.test_validate_stream import CORPUS, SAMPLES

TERMINOLOGY = load_terminology()
RULESETS = load_rulesets()


def report(paths: list[str], jobs: int, stream_above: int | None = None) -> tuple[bytes, bytes, bool, int]:
    """Text (with information) and JSON reports, whether a file was unreadable, resources counted."""
    validator = Validator("R4", TERMINOLOGY, RULESETS)
    if stream_above is not None:
        validator.stream_above = stream_above
    result = validator.validate(paths, jobs=jobs)
    try:
        return (
            "".join(text(result, verbose=True)).encode(),
            b"".join(bundle(result)),
            result.unreadable,
            result.resources,
        )
    finally:
        result.spool.close()


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """NDJSON files with what a piece boundary could get wrong (numbering after blank lines and CRLF line ends,
    lines that are not JSON or name no known type, versions and copies of a resource far apart, a patient in
    another file), a large Bundle (read entry by entry when `stream_above` is low), a missing file, a file named
    twice, and directories of Bundles and resources."""
    root = tmp_path_factory.mktemp("messy")
    small = cohort(root / "cohort", 12)
    lines = b"".join(p.read_bytes() for p in small.ndjson_files()).splitlines()
    first = orjson.loads(lines[40])
    lines[7] = lines[7][:90]  # cut short
    lines[21] = lines[21].replace(b'"resourceType":"', b'"resourceType":"X', 1)  # no such type
    lines.insert(55, b"")
    lines.insert(56, b"   ")
    lines.insert(90, b"[1, 2]")
    lines.append(orjson.dumps({**first, "meta": {"lastUpdated": "2031-01-01T00:00:00Z"}}))  # a later version
    lines.append(lines[40])  # an identical copy
    export = root / "export.ndjson"
    export.write_bytes(b"\n".join(lines) + b"\n")
    crlf = root / "crlf.jsonl"
    crlf.write_bytes(b"\r\n".join(lines[100:160]) + b"\r\n")
    mixed = root / "mixed.ndjson"  # line ends of every kind (a lone \r ends a line too, but a piece only at \n)
    ends = (b"\n", b"\r", b"\r\n", b"\r\r\n")
    mixed.write_bytes(b"".join(line + ends[n % 4] for n, line in enumerate(lines[300:420])))
    entries = [{"fullUrl": f"urn:uuid:r{n}", "resource": orjson.loads(line)} for n, line in enumerate(lines[200:260])]
    large = root / "large-bundle.json"
    large.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    missing = root / "missing.ndjson"
    return [
        str(export),
        str(crlf),
        str(mixed),
        str(large),
        str(missing),
        str(export),
        str(CORPUS),
        str(SAMPLES / "bundles"),
    ]


def test_jobs_report_what_one_process_reports(messy: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "UNIT_BYTES", 3000)  # the NDJSON files in many pieces
    assert len(reader.split_units(messy, 3000)) > 50
    for stream_above, many in ((10_000, (2,)), (None, (2, 3))):  # the large Bundle read entry by entry, or whole
        one = report(messy, 1, stream_above)
        for jobs in many:
            assert report(messy, jobs, stream_above) == one, (jobs, stream_above)
    printed = one[0].decode()
    for words in (  # each case is there to be merged
        "malformed JSON",
        "unknown resourceType",
        "two versions: kept the one at",
        "identical copy",
        "cannot read",
        "line 400",  # numbered across pieces
    ):
        assert words in printed, words
    assert one[2] is True  # the missing file


def test_jobs_merge_the_input_profile_across_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """classify's crossing export (versions, copies, aliases, Medications in other files, unreadable records in
    pieces of their own): the input profile's problems placed as one process places them."""
    monkeypatch.setattr(reader, "UNIT_BYTES", 600)
    inputs = crossing_export(tmp_path)
    assert len(reader.split_units(inputs, 600)) > 10
    one = report(inputs, 1)
    assert report(inputs, 2) == one
    assert b"Medication/gone is not in the input" in one[0]


def test_validate_command_takes_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "UNIT_BYTES", 600)
    inputs = crossing_export(tmp_path)
    for fmt in ("text", "json"):
        one = invoke(["validate", *inputs, "--format", fmt, "-v"])
        assert one[0] == 1
        assert invoke(["validate", *inputs, "--format", fmt, "-v", "--jobs", "2"]) == one
    said = invoke(["validate", *inputs, "--jobs", "0"])
    assert said[0] == 2 and "--jobs" in said[2]


def test_standard_input_is_read_in_one_process(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fhir_ns.cli import cli

    data = (SAMPLES / "bundles").glob("*.json").__next__().read_bytes()
    one = CliRunner().invoke(cli, ["validate", "-"], input=data)
    two = CliRunner().invoke(cli, ["validate", "-", "--jobs", "2"], input=data)
    assert (two.exit_code, two.stdout_bytes) == (one.exit_code, one.stdout_bytes)
    assert b"resource(s)" in one.stdout_bytes


def test_a_recorder_replays_what_it_took_in_as_a_spool_takes_it() -> None:
    """What a worker recorded, replayed into the parent's Spool: the same rows, order and counts as added there."""
    from fhir_ns.validate.issues import Issue
    from fhir_ns.validate.spool import Located, Place, Spool

    issue = Issue("error", "value", "bad", "invariant", "status")
    note = Issue("information", "informational", "dom-6", "invariant", "")
    direct, replayed = Spool(), Spool()
    for spool in (direct, replayed):
        spool.new_report()
        spool.new_report()
        spool.add(1, 0, Located(note, "", "Observation"))  # the report the recorded rows go to has one already
    recorder = Recorder()
    for sink in (direct, recorder):
        for line in (3, 12, 4):
            sink.add(1, 1, Located(issue, f"line {line} Observation/o{line}", "Observation.status"), order=line % 2)
            sink.place("f.ndjson", None, line, Place(1, "Observation", f"line {line} Observation/o{line}"))
        sink.add(1, 1, Located(note, "", "Observation"))
    replayed.replay(1, recorder)
    for grouped in (False, True):
        assert list(replayed.issues(1, grouped=grouped)) == list(direct.issues(1, grouped=grouped))
    assert (
        replayed.find("f.ndjson", None, 12)
        == direct.find("f.ndjson", None, 12)
        == Place(1, "Observation", "line 12 Observation/o12")
    )
    assert (
        replayed.severity_counts(1)
        == direct.severity_counts(1)
        == {
            "fatal": 0,
            "error": 3,
            "warning": 0,
            "information": 2,
        }
    )
