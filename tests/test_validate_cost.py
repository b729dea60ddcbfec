"""What `validate` remembers or takes a shorter way to cost less per resource gives what the longer way gives:
the usual Observation filed at once by `FactCollector.add` (as `read` files it), the drug lookups the input
profile shares with the collector, and an invariant's failure made once per path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from fhir_ns.fhir.extract import FactCollector
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.terminology import ATC, load_terminology
from fhir_ns.validate import invariants
from fhir_ns.validate.invariants import FAILURES_REMEMBERED, CompiledInvariant, for_spec
from fhir_ns.validate.spec import load_spec
from tests.test_fast_path import observation_variants
from tests.test_fhir_input import patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_add_files_the_usual_observation_as_the_general_reader_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries added one at a time (validate's input profile), with the usual Observation's lane and without: the
    same records, counts and problems."""
    resources = [patient("p1"), patient("p2"), *observation_variants()]
    resources += resources[2:]  # every one again: duplicates settled the same way
    terminology = load_terminology()

    def read(lane: bool) -> tuple[Any, Any, list[str]]:
        problems: list[Problem] = []
        collector = FactCollector(terminology, problems)
        if not lane:
            monkeypatch.setattr(collector, "_usual_observation", lambda *args: False)
        for line, resource in enumerate(resources, start=1):
            collector.add(Entry(orjson.loads(orjson.dumps(resource)), Location("in.ndjson", line=line)))
        exported = collector.export(0, 0)
        return exported.records, exported.counts, [str(p) for p in problems]

    taken: list[bool] = []
    original = FactCollector._usual_observation

    def counting(self: FactCollector, *args: Any) -> bool:
        taken.append(original(self, *args))
        return taken[-1]

    monkeypatch.setattr(FactCollector, "_usual_observation", counting)
    with_lane = read(True)
    monkeypatch.undo()
    assert 10 <= sum(taken) < len(taken)  # the lane takes the usual ones and leaves the others
    assert with_lane == read(False)


def test_drug_lookups_answer_as_the_terminology_does() -> None:
    terminology = load_terminology()
    collector = FactCollector(terminology, [])
    names = ["prednisolone", "Prednisone 5 mg", "ciclosporin 100 mg/ml", "omeprazole", "tacrolimus (Prograf)", "x"]
    codes = [(RXNORM, "8638"), (RXNORM, "7646"), (ATC, "H02AB06"), (ATC, "L04AD01"), (ATC, "A02BC01"), (RXNORM, "")]
    for _ in range(2):  # looked up, then remembered
        assert [collector.drug_named(n) for n in names] == [terminology.drug_for_text(n) for n in names]
        assert [collector.drug_coded(*c) for c in codes] == [terminology.drug_for_code(*c) for c in codes]


def test_a_failure_is_the_same_issue_at_the_same_path_whether_remembered_or_not() -> None:
    spec = load_spec("R4")
    rule: CompiledInvariant = replace(for_spec(spec)["DomainResource"][0], failures={})  # none remembered yet
    paths = [f"contained[{i}]" for i in range(FAILURES_REMEMBERED + 5)]
    first = [rule.failure(path) for path in paths]
    again = [rule.failure(path) for path in paths]
    assert first == again == [invariants._failure(rule.invariant, path) for path in paths]
    assert all(a is b for a, b in zip(first[:FAILURES_REMEMBERED], again, strict=False))
    assert len(rule.failures) <= FAILURES_REMEMBERED
