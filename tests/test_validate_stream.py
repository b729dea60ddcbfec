"""`fhir-ns validate` on large input: NDJSON read a line at a time, issues kept on disk, and the cheap proof
that most resources of a bulk export are clean: it must change nothing that is reported."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.cohort import cohort
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator, runner, spool
from fhir_ns.validate.render import bundle, text

TESTS = Path(__file__).parent
CORPUS = TESTS / "validation-corpus"
EXAMPLES = TESTS / "hl7-examples"
SAMPLES = TESTS.parent / "samples"


def validator(fast: bool = True) -> Validator:
    found = Validator("R4", load_terminology(), load_rulesets())
    found.fast = fast
    return found


def reported(paths: list[Path], fast: bool) -> list[tuple[str, str, str, str, str, str]]:
    result = validator(fast).validate([str(p) for p in paths])
    return [
        (report.name, x.group, x.expression, x.issue.severity, x.issue.layer, x.issue.message)
        for report in result.files
        for x in report.issues
    ]


def resources(path: Path) -> Iterator[dict[str, Any]]:
    """The resources of a JSON file that orjson reads: itself, or a Bundle's entries and the Bundle."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict):
        return
    yield doc
    if doc.get("resourceType") == "Bundle":
        for entry in doc.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield entry["resource"]


def defective(resource: dict[str, Any]) -> Iterator[bytes]:
    """A resource's canonical text with one layer-1 defect each that the text as orjson writes it cannot show."""
    text = orjson.dumps(resource)
    body = text[1:-1]
    yield b'{"id":"twice",' + body + b"}" if b'"id":' in text else b'{"status":"x",' + body + b"}"  # a key twice
    yield text[:-1] + b',"extension":[{"url":"http://x.org/n","valueInteger":1234567890123456789}]}'  # 19 digits
    yield text[:-1] + b',"extension":[{"url":"http://x.org/n","valueString":null}]}'  # null
    yield text[:-1] + b',"extension":[]}'  # an empty array
    yield b"\xef\xbb\xbf" + text  # a byte order mark
    yield text[:-1] + b',"contained":[{"resourceType":"Bogus","id":"b"}]}'  # an unknown contained type
    yield text[:-1] + b',"meta":{}}' if b'"meta"' not in text else text.replace(b'"meta":{', b'"meta":{"x":{},', 1)
    yield text + b" "  # not as orjson writes it: proven by nothing, read as before


@pytest.fixture(scope="module")
def ndjson_of_everything(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus, the HL7 examples, the sample Bundles and a small synthetic cohort as NDJSON: each resource
    as orjson writes it (what the cheap proof is for), and with the defects of `defective`."""
    lines: list[bytes] = []
    files = sorted(CORPUS.glob("*.json")) + sorted(EXAMPLES.glob("*.json")) + sorted(SAMPLES.glob("bundles/*.json"))
    for path in files:
        for number, resource in enumerate(resources(path)):
            lines.append(orjson.dumps(resource))
            if number < 2:  # the document and its first entry
                lines.extend(defective(resource))
    small = cohort(tmp_path_factory.mktemp("cohort"), 6)
    for path in small.ndjson_files():
        lines.extend(path.read_bytes().splitlines())
    target = tmp_path_factory.mktemp("ndjson") / "everything.ndjson"
    target.write_bytes(b"\n".join(lines) + b"\n")
    return target


def test_the_cheap_proof_and_the_layers_report_the_same_on_every_input(ndjson_of_everything: Path) -> None:
    proven = validator()
    lines = [line for line in ndjson_of_everything.read_bytes().splitlines() if line.strip()]
    clean = [line for line in lines if proven._proven(line) is not None]
    assert len(clean) > 500  # the proof does its work (each defective copy is refused, see below)
    [report] = validator(fast=False).validate([str(_write(b"\n".join(clean)))]).files
    found = [x for x in report.issues if x.issue.layer in ("syntax", "structure", "binding")]
    assert not found, found[:3]  # nothing proven clean has anything for layers 1-3 to find
    inputs = [
        ndjson_of_everything,
        *sorted(CORPUS.glob("*.json")),
        *sorted(CORPUS.glob("*.ndjson")),
        EXAMPLES,
        SAMPLES / "bundles",
    ]
    assert reported(inputs, fast=True) == reported(inputs, fast=False)


def _write(line: bytes) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".ndjson")
    with open(fd, "wb") as fh:
        fh.write(line + b"\n")
    return Path(name)


class _NoCollector:
    """The input profile without the classifier's collector, whose memory (records beyond SPILL on disk,
    a little per record and per patient in memory) is measured by `python -m bench --validate`."""

    def __init__(self, *_: Any) -> None:
        pass

    def add(self, *_: Any) -> list[Any]:
        return []

    def finish(self) -> Iterator[Any]:
        return iter(())


def test_ndjson_is_read_a_line_at_a_time_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few MB of NDJSON validated with far less memory than the file: nothing holds the lines, the
    documents or the issues (each resource has one, dom-6). The validate before this held ten times the
    file."""
    small = cohort(tmp_path / "cohort", 60)
    big = tmp_path / "big.ndjson"
    big.write_bytes(b"".join(p.read_bytes() for p in small.ndjson_files()))
    size = big.stat().st_size
    assert size > 3_000_000
    monkeypatch.setattr(runner, "InputProfile", _NoCollector)
    monkeypatch.setattr(runner, "_READ_BYTES", 1 << 16)  # the things of a fixed size: the read buffer,
    monkeypatch.setattr(spool, "_BATCH", 100)  # and the rows written to disk at once
    checker = validator()
    checker.validate([str(small.ndjson / "Patient.ndjson")])  # models, schemas and mappings loaded first
    tracemalloc.start()
    result = checker.validate([str(big)])
    for _ in text(result, verbose=True):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.resources == sum(1 for _ in big.read_bytes().splitlines())
    assert sum(result.spool.severity_counts(0).values()) >= result.resources
    assert peak < size / 3, (peak, size)


def test_lines_are_cut_as_bytes_splitlines_cuts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"a":1}\r\n{"b":2}\r{"c":3}\n\n  \n{"d":4}\r\n{"e":5}'
    for size in (1, 2, 3, 5, 8, 64):
        monkeypatch.setattr(runner, "_READ_BYTES", size)
        assert list(runner._lines(io.BytesIO(data))) == data.splitlines()
        assert list(runner._lines(io.BytesIO(data + b"\r\n"))) == (data + b"\r\n").splitlines()


def test_json_output_is_written_piece_by_piece_as_one_indented_document() -> None:
    result = validator().validate([str(CORPUS / "observation-status-bogus.json"), str(CORPUS / "bad-line.ndjson")])
    written = b"".join(bundle(result))
    assert written == orjson.dumps(orjson.loads(written), option=orjson.OPT_INDENT_2)
    entries = orjson.loads(written)["entry"]
    assert [len(e["resource"]["issue"]) for e in entries] == [len(f.issues) for f in result.files]
