"""`fhir-ns validate` on a large Bundle: read one entry at a time (fhir_ns/fhir/stream.py, validate/streamed.py),
in memory that does not grow with the Bundle, reporting what reading it whole reports."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cohort import cohort
from bench.validate_bench import large_bundle
from fhir_ns.fhir.stream import Element, Malformed, Member, members
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator
from fhir_ns.validate.render import bundle, text

TESTS = Path(__file__).parent
CORPUS = TESTS / "validation-corpus"
EXAMPLES = TESTS / "hl7-examples"
SAMPLES = TESTS.parent / "samples"


def validator(streamed: bool, version: str = "R4") -> Validator:
    found = Validator(version, load_terminology(), load_rulesets())  # type: ignore[arg-type]
    if streamed:
        found.stream_above = 0
    return found


def outputs(paths: list[Path], streamed: bool, version: str = "R4") -> tuple[list[Any], bytes, str]:
    """What validate reports on the paths: every issue as found, the JSON output and the text output."""
    result = validator(streamed, version).validate([str(p) for p in paths])
    found = [
        (report.name, x.group, x.expression, x.issue.severity, x.issue.layer, x.issue.code, x.issue.message)
        for report in result.files
        for x in report.issues
    ]
    return found, b"".join(bundle(result)), "".join(text(result, verbose=True))


def bundles_orjson_reads(directory: Path) -> list[Path]:
    """The Bundles of a directory that are JSON (what the streamed reading and the whole one both read)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            out.append(path)
    return out


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param(sorted((SAMPLES / "bundles").glob("*.json")), id="samples"),
        pytest.param(bundles_orjson_reads(CORPUS), id="corpus"),
        pytest.param(bundles_orjson_reads(EXAMPLES), id="hl7-examples"),
    ],
)
def test_a_bundle_read_entry_by_entry_reports_what_it_reports_read_whole(paths: list[Path]) -> None:
    assert paths
    assert outputs(paths, streamed=True) == outputs(paths, streamed=False)


# -- the reading: a Bundle's members, and its entries one at a time ----------------------------------------
_TEXT = st.text(alphabet=st.sampled_from(list('ab {}[],:"\\/\n\té€😀') + ["\x00", "\x1f"]), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _written(doc: dict[str, Any], style: int) -> bytes:
    """A JSON text of `doc`: compact, indented, or with spaces, tabs and line breaks around every token."""
    if style == 0:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if style == 1:
        return json.dumps(doc, indent=2).encode()
    return json.dumps(doc, indent="\t", separators=(" ,\r\n", " :  "), ensure_ascii=False).encode()


@settings(max_examples=300, deadline=None)
@given(
    before=st.dictionaries(_TEXT.filter(lambda k: k != "entry"), _JSON, max_size=3),
    entries=st.lists(_JSON, min_size=1, max_size=6),
    after=st.dictionaries(_TEXT.filter(lambda k: k != "entry"), _JSON, max_size=3),
    style=st.integers(0, 2),
    chunk=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_entries_are_cut_where_they_end_whatever_their_strings_hold(
    before: dict[str, Any], entries: list[Any], after: dict[str, Any], style: int, chunk: int
) -> None:
    """Strings with brackets, braces, commas, quotes, backslashes, escapes and multi-byte characters, numbers
    cut by the read buffer, any white space between tokens: each entry comes whole, where it is in the file."""
    doc = {"resourceType": "Bundle", **{k: v for k, v in before.items() if k not in after}, "entry": entries, **after}
    data = _written(doc, style)
    parts = list(members(io.BytesIO(data), chunk=chunk))
    assert [json.loads(p.text) for p in parts if isinstance(p, Element)] == entries
    for part in parts:
        if isinstance(part, Element):
            assert data[part.offset : part.offset + len(part.text)] == part.text
    keys = [p.key for p in parts if isinstance(p, Member)]
    assert keys == [k for k in doc if k != "entry"]
    assert {p.key: json.loads(p.value) for p in parts if isinstance(p, Member)} == {
        k: v for k, v in doc.items() if k != "entry"
    }


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (lambda t: t[: t.index(b'"id": "third"')], "unexpected end of data"),
        (lambda t: t.replace(b'"id": "third"', b'"id": "third",,'), "expected"),
        (lambda t: t.replace(b'"id": "third"', b'"id": NaN'), "NaN and Infinity are not JSON numbers"),
        (lambda t: t.replace(b'"id": "third"', b'"id" "third"'), "expected"),
        (lambda t: t.replace(b'"id": "third"', b'"id": "thi\nrd"'), ""),
    ],
    ids=["cut", "two-commas", "nan", "no-colon", "newline-in-string"],
)
def test_malformed_json_says_where_it_is(broken: Any, reason: str) -> None:
    doc = {"resourceType": "Bundle", "entry": [{"a": "x]"}, {"b": "}"}, {"id": "third"}, {"c": 1}]}
    data = broken(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    with pytest.raises(Malformed) as caught:
        list(members(io.BytesIO(data), chunk=8))
    exc = caught.value
    assert exc.element == 2
    assert reason in exc.reason
    lines = data[: exc.offset].split(b"\n")
    assert (exc.line, exc.column) == (len(lines), len(lines[-1].decode()) + 1)


# -- validate on a Bundle read entry by entry -------------------------------------------------------------
def _sample_entries() -> list[dict[str, Any]]:
    """Every entry of the sample Bundles (real patients' resources of every kind fhir-ns reads)."""
    out = []
    for path in sorted((SAMPLES / "bundles").glob("*.json")):
        out.extend(orjson.loads(path.read_bytes())["entry"])
    return out


def test_malformed_json_in_the_middle_is_said_with_its_place_and_what_came_before_is_reported(tmp_path: Path) -> None:
    entries = _sample_entries()[:40]
    entries[5]["resource"]["status"] = "bogus"  # an error before the break, reported as usual
    head = orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries[:20]})[:-2]
    data = head + b',{"fullUrl":"urn:uuid:x","resource":{"resourceType":"Observation","status":"final",]}]}'
    path = tmp_path / "broken.json"
    path.write_bytes(data)
    found, _, written = outputs([path], streamed=True)
    broken = [x for x in found if "malformed JSON" in x[6]]
    assert len(broken) == 1
    _, group, _, severity, layer, _, message = broken[0]
    column = len(data[: data.index(b",]}]}") + 1].decode()) + 1  # the `]` where a member should be, in characters
    assert (group, severity, layer) == ("entry[20]", "error", "syntax")
    assert message.startswith(f"malformed JSON at line 1 column {column} (entry[20]): ")
    assert "the rest of the Bundle is not read" in message
    bogus = [x for x in found if x[2] == "Bundle.entry[5].resource.status" and x[4] == "binding"]
    assert bogus and bogus[0][1].startswith("entry[5] ")
    assert "1 file(s)" in written.splitlines()[-1]
    # read whole, the same file says only that it is malformed
    whole, _, _ = outputs([path], streamed=False)
    assert [x[6].split(":")[0] for x in whole] == ["malformed JSON at line 1 column " + str(column)]


def _kinds_of_entry() -> st.SearchStrategy[dict[str, Any]]:
    """Entries as the Bundle-wide invariants see them: with or without fullUrl (some shared, some naming a
    version), resource (first-entry types included), request (each method), response, search."""
    resource = st.sampled_from(["Patient", "Composition", "MessageHeader", "SubscriptionStatus", "Observation"]).map(
        lambda t: {"resourceType": t, "id": "r1"}
    )
    versioned = st.tuples(resource, st.sampled_from(["1", "2"])).map(lambda rv: {**rv[0], "meta": {"versionId": rv[1]}})
    return st.fixed_dictionaries(
        {},
        optional={
            "fullUrl": st.sampled_from(["urn:uuid:1", "urn:uuid:2", "http://x.org/Patient/1/_history/2"]),
            "resource": resource | versioned,
            "request": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]).map(
                lambda m: {"method": m, "url": "Patient"}
            ),
            "response": st.just({"status": "200"}),
            "search": st.just({"mode": "match"}),
        },
    )


BUNDLE_TYPES = [
    "document", "message", "transaction", "transaction-response", "batch", "batch-response",
    "history", "searchset", "collection", "subscription-notification",
]  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(BUNDLE_TYPES),
    entries=st.lists(_kinds_of_entry(), min_size=1, max_size=9),
    version=st.sampled_from(["R4", "R5"]),
)
def test_the_bundle_wide_invariants_judge_a_streamed_bundle_as_a_whole_one(
    tmp_path: Path, kind: str, entries: list[dict[str, Any]], version: str
) -> None:
    """bdl-* read the Bundle's entries together (the first one's type, all of them, fullUrls twice, the
    methods of all); read entry by entry they are evaluated on a reduced Bundle, which must judge alike."""
    path = tmp_path / "bundle.json"
    doc = {"resourceType": "Bundle", "type": kind, "entry": entries, "link": [{"relation": "self", "url": "x"}]}
    path.write_bytes(orjson.dumps(doc))
    assert outputs([path], True, version) == outputs([path], False, version)


def _validate_alone(path: Path, out: Path) -> tuple[int, int]:
    """`fhir-ns validate` of one file in its own process, run from a fresh Python that runs nothing else: its
    exit code and its peak RSS in kB (the largest of that Python's children, RUSAGE_CHILDREN)."""
    code = textwrap.dedent(
        """
        import resource, subprocess, sys
        with open(sys.argv[2], "wb") as out:
            done = subprocess.run([sys.executable, "-m", "fhir_ns", "validate", "-q", sys.argv[1]], stdout=out)
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        """
    )
    ran = subprocess.run([sys.executable, "-c", code, str(path), str(out)], capture_output=True, text=True, check=True)
    status, peak = ran.stdout.split()
    return int(status), int(peak)


def test_a_large_bundle_is_validated_in_memory_that_does_not_grow_with_it(tmp_path: Path) -> None:
    """A 20+ MB collection Bundle of a synthetic cohort (about 25,000 entries), one Observation's status made
    bogus half-way: validated with far less memory over the process's own than the Bundle takes once parsed
    (read whole, validate held about 14 times the file), and the error named by its entry."""
    files = cohort(tmp_path / "cohort", 360)
    path = large_bundle(files)
    data = path.read_bytes()
    at = data.index(b'"status":"final"', len(data) // 2)
    path.write_bytes(data[:at] + b'"status":"bogus"' + data[at + len(b'"status":"final"') :])
    size = path.stat().st_size
    assert size > 20_000_000
    entry = next(p.index for p in members(io.BytesIO(data)) if isinstance(p, Element) and p.offset > at) - 1

    tracemalloc.start()
    parsed = orjson.loads(data)
    _, held = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del parsed, data

    _, alone = _validate_alone(SAMPLES / "bundles" / "steroid-sensitive.json", tmp_path / "small.txt")
    status, peak = _validate_alone(path, tmp_path / "out.txt")
    assert status == 1  # the bogus status, and the units the cohort's records use that fhir-ns refuses
    assert (peak - alone) * 1024 < held / 3, (peak, alone, held)
    written = (tmp_path / "out.txt").read_text()
    assert f"Bundle.entry[{entry}].resource.status  [binding] 'bogus' is not in the required value set" in written


def _wrapped(body: bytes) -> dict[str, bytes]:
    """A resource's JSON text (with whatever layer-1 defect it has) as the entry of Bundles read entry by entry:
    between two other entries with members of the Bundle after `entry`; after a byte order mark with a null
    `total`; in a Bundle without its required `type`."""
    return {
        "between": b'{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0","resource":'
        b'{"resourceType":"Patient","id":"a"}},{"fullUrl":"urn:uuid:1","resource":'
        + body
        + b'},{"fullUrl":"urn:uuid:2"}],"signature":{"type":[]}}',
        "bom": b'\xef\xbb\xbf{"resourceType":"Bundle","id":"b","entry":[{"resource":' + body + b'}],"total":null}',
        "no-type": b'{"resourceType":"Bundle","id":"b","entry":[{"fullUrl":"u","resource":' + body + b"}]}",
    }


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(CORPUS.glob("*.json"))
        if not p.read_bytes().lstrip().startswith(b'{\n  "resourceType": "Bundle"')
    ],
)
def test_each_defect_of_the_corpus_in_an_entry_is_reported_as_when_read_whole(path: Path, tmp_path: Path) -> None:
    """Duplicate keys, huge numbers, nulls, empty arrays, unknown types, bad codes and dates ... inside an entry;
    only JSON that is not JSON (NaN, a trailing comma, bytes that are not UTF-8, nesting too deep for a JSON
    reader) is reported otherwise, on purpose (what came before it, and where it is)."""
    body = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for name, data in _wrapped(body).items():
        try:
            orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            continue
        file = tmp_path / f"{name}.json"
        file.write_bytes(data)
        assert outputs([file], streamed=True) == outputs([file], streamed=False), name
