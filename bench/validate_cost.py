"""What validation costs: 10,000 resources through all six layers, the cost of each layer, and the cost
of `convert`'s entry gate (layers 2-3 before the classifier reads an entry).

    python bench/validate_cost.py [N]
    python bench/validate_cost.py --gate INPUT...   # only the entry gate, on any input (a cohort's NDJSON)

The input is the sample bundles, copied with fresh patient ids until N resources (default 10,000).
Prints figures; asserts nothing (timings depend on the machine). The invariant layer is broken down
by invariant, with how many of its evaluations native code decided (fhir_ns/validate/native.py) and how
many went to fhirpathpy: the list of what to make native next, if the layer ever needs it. The gate is
broken down into what it costs per resource it checks: the layers themselves (all it did before
fhir_ns/validate/fastcheck.py), the fast check, how many entries that proves clean, and the gate as it is.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhir_ns.fhir.extract import READ_TYPES  # noqa: E402
from fhir_ns.fhir.reader import read_entries  # noqa: E402
from fhir_ns.pipeline import Config, collect  # noqa: E402
from fhir_ns.terminology import load_terminology  # noqa: E402
from fhir_ns.validate import LAYERS, EntryGate, Validator  # noqa: E402
from fhir_ns.validate.bindings import check_bindings  # noqa: E402
from fhir_ns.validate.elements import walk  # noqa: E402
from fhir_ns.validate.fastcheck import proves_clean  # noqa: E402
from fhir_ns.validate.invariants import FHIRPATH_MODEL_NAME, compiled, evaluate  # noqa: E402
from fhir_ns.validate.spec import Spec, load_spec  # noqa: E402
from fhir_ns.validate.structure import check_resource  # noqa: E402


def build(target: Path, wanted: int) -> int:
    """Copies of the sample bundles, each with its own patient, until `wanted` resources."""
    bundles = [(p, orjson.loads(p.read_bytes())) for p in sorted((ROOT / "samples" / "bundles").glob("*.json"))]
    written, copy = 0, 0
    while written < wanted:
        for path, bundle in bundles:
            pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
            text = orjson.dumps(bundle).decode().replace(pid, f"{pid}-c{copy}")
            (target / f"{path.stem}-c{copy}.json").write_text(text, encoding="utf-8")
            written += 1 + len(bundle["entry"])  # the Bundle and its entries
            if written >= wanted:
                break
        copy += 1
    return written


def main() -> None:
    if sys.argv[1:2] == ["--gate"]:
        gate_costs(sys.argv[2:])
        return
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    config = Config.load()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        build(directory, wanted)
        validator = Validator("R4", config.terminology, config.rulesets)
        Validator("R4", config.terminology, config.rulesets).validate([str(next(directory.iterdir()))])  # warm caches
        start = time.perf_counter()
        result = validator.validate([str(directory)])
        total = time.perf_counter() - start
        n = result.resources
        print(f"validate, all layers: {n} resources in {total:.2f} s ({total / n * 1e6:.0f} us per resource)")
        for layer in LAYERS:
            seconds = result.seconds[layer]
            print(f"  {layer:<15} {seconds:7.2f} s  {seconds / n * 1e6:6.0f} us/resource")
        print("  (binding includes the element walk that invariant reuses)")
        invariant_costs(sorted(directory.iterdir()), n)

        inputs = [str(directory)]
        collect([str(next(directory.iterdir()))], config, EntryGate("R4", _all_types()))  # the gate's schemas built
        timings = {}
        for label, gate in (
            ("no gate", None),
            ("gate on the types fhir-ns reads", EntryGate("R4")),
            ("gate on what the classifier uses (convert)", EntryGate("R4", terminology=load_terminology())),
            ("gate on every resource type", EntryGate("R4", frozenset({"*"}) | _all_types())),
        ):
            start = time.perf_counter()
            collect(inputs, config, gate)
            timings[label] = time.perf_counter() - start
        base = timings["no gate"]
        print(f"convert's reading (collect) of the same input: {base:.2f} s without the entry gate")
        for label, seconds in timings.items():
            if label != "no gate":
                print(f"  {label}: {seconds:.2f} s (+{(seconds - base) / n * 1e6:.0f} us per resource)")
        gate_costs(inputs)


def gate_costs(inputs: list[str]) -> None:
    """The entry gate on each resource of the types fhir-ns reads, given as its JSON text (`check_raw`)."""
    entries = [
        e for e in read_entries(inputs, [], typed=True) if e.raw is not None and not isinstance(e.resource, dict)
    ]
    spec, gate = load_spec("R4"), EntryGate("R4")
    for entry in entries[:50]:  # schemas and models built, caches warm
        gate.check_raw(entry.raw or b"", entry.resource.resource_type, entry.location)
        _layers(entry.raw or b"", spec)
    start = time.perf_counter()
    proven = sum(proves_clean(e.raw or b"", e.resource.resource_type, "R4") for e in entries)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for entry in entries:
        gate.check_raw(entry.raw or b"", entry.resource.resource_type, entry.location)
    now = time.perf_counter() - start
    start = time.perf_counter()
    for entry in entries:
        _layers(entry.raw or b"", spec)
    layers = time.perf_counter() - start
    n = len(entries)
    print(f"entry gate on {n} resources of the types fhir-ns reads (R4, every one checked), per resource:")
    print(f"  layers 2-3 (the gate before the fast check) {layers / n * 1e6:7.1f} us")
    print(f"  fast check                                  {fast / n * 1e6:7.1f} us, proving {proven / n:.2%} clean")
    print(f"  the gate now (check_raw)                    {now / n * 1e6:7.1f} us")


def _layers(raw: bytes, spec: Spec) -> None:
    resource = orjson.loads(raw)
    check_resource(resource, spec.version)
    check_bindings(walk(resource, spec), spec)


def invariant_costs(files: list[Path], resources: int) -> None:
    """Each invariant's share of the layer (evaluated as the layer does, after its guard)."""
    spec = load_spec("R4")
    rules = compiled(spec.version, FHIRPATH_MODEL_NAME[spec.version], tuple(spec.invariants))
    seconds: dict[str, float] = {}
    counts: dict[str, list[int]] = {}  # key -> [native, fhirpathpy]
    for path in files:
        for node in walk(orjson.loads(path.read_bytes()), spec):
            for rule in rules.applicable(node.contexts):
                if not rule.can_fail(node.value):
                    continue
                key = rule.invariant.key
                start = time.perf_counter()
                natively = rule.holds_natively(node) is not None
                evaluate(rule, node)
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
                counts.setdefault(key, [0, 0])[0 if natively else 1] += 1
    print("  invariant cost by invariant (native verdicts computed twice here):")
    for key, spent in sorted(seconds.items(), key=lambda kv: -kv[1])[:12]:
        native, fhirpath = counts[key]
        print(f"    {key:<7} {spent / resources * 1e6:6.1f} us/resource  {native:6d} native {fhirpath:6d} fhirpathpy")


def _all_types() -> frozenset[str]:
    return READ_TYPES | {"Bundle", "Encounter", "Practitioner", "Organization", "Device"}


if __name__ == "__main__":
    main()
