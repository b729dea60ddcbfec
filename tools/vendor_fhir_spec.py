"""Vendor the FHIR definitions `fhir-ns validate` needs: required bindings with their codes, and invariants.

Reads an unpacked HL7 FHIR package (StructureDefinition-*.json, ValueSet-*.json, CodeSystem-*.json),
for the resource types fhir-ns reads and writes and every datatype they use, and writes
`mappings/fhir/<VERSION>/valuesets.yaml` and `invariants.yaml`. Nothing is typed by hand: codes and
FHIRPath expressions are copied from the package. The packages are on the npm registry:

    npm pack hl7.fhir.r4.examples@4.0.1   # R4: the examples package carries the definitions too
    npm pack hl7.fhir.r4b.core@4.3.0
    npm pack hl7.fhir.r5.core@5.0.0
    npm pack hl7.terminology.r5@7.0.1     # R5 left the terminology.hl7.org code systems out of core
    tar xzf hl7.fhir.r4.examples-4.0.1.tgz && python tools/vendor_fhir_spec.py R4 package
    python tools/vendor_fhir_spec.py R5 r5-core/package --terminology tho/package
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhir_ns.validate.invariants import compile_invariant  # noqa: E402

RESOURCE_TYPES = (
    "Patient",
    "Observation",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Medication",
    "Procedure",
    "DetectedIssue",
    "CarePlan",
    "Provenance",
    "Device",
    "Bundle",
    "OperationOutcome",
)
BASES = ("Resource", "DomainResource", "Element", "BackboneElement", "Extension")
SKIP_TYPES = {"Resource", "BackboneElement", "Element", "xhtml"}
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


class Package:
    def __init__(self, directory: Path, terminology: list[Path]) -> None:
        self.dir = directory
        self.manifest = json.loads((directory / "package.json").read_text(encoding="utf-8"))
        self.terminology = [json.loads((d / "package.json").read_text(encoding="utf-8")) for d in terminology]
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.code_systems: dict[str, dict[str, Any]] = {}
        # the core package last, so its own definitions win
        for source in [*terminology, directory]:
            for path in source.glob("ValueSet-*.json"):
                vs = json.loads(path.read_text(encoding="utf-8"))
                self.value_sets[vs["url"]] = vs
            for path in source.glob("CodeSystem-*.json"):
                cs = json.loads(path.read_text(encoding="utf-8"))
                self.code_systems[cs["url"]] = cs

    def structure(self, name: str) -> dict[str, Any] | None:
        path = self.dir / f"StructureDefinition-{name}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def expand(self, url: str) -> tuple[dict[str, list[str]] | None, str]:
        """{system: [codes]} of a value set, or None and why it cannot be enumerated here."""
        vs = self.value_sets.get(url.split("|")[0])
        if vs is None:
            return None, f"value set {url} is not in the package"
        compose = vs.get("compose") or {}
        if compose.get("exclude"):
            return None, "value set has exclusions"
        out: dict[str, list[str]] = {}
        for include in compose.get("include", []):
            if include.get("valueSet") or include.get("filter"):
                return None, "value set is defined by filters or other value sets"
            system = include.get("system")
            if not system:
                return None, "include without a system"
            if include.get("concept"):
                codes = [c["code"] for c in include["concept"]]
            else:
                cs = self.code_systems.get(system)
                if cs is None or cs.get("content") not in (None, "complete"):
                    return None, f"code system {system} is external or not complete in the package"
                codes = _flatten(cs.get("concept", []))
            out.setdefault(system, []).extend(codes)
        return (out, "") if out else (None, "value set is empty in the package")


def _flatten(concepts: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(_flatten(concept.get("concept", [])))
    return codes


def _type_codes(element: dict[str, Any]) -> list[str]:
    return [t["code"] for t in element.get("type", [])]


def collect(package: Package) -> tuple[dict[str, Any], dict[str, Any]]:
    bindings: dict[str, dict[str, Any]] = {}
    skipped_bindings: dict[str, str] = {}
    invariants: list[dict[str, Any]] = []
    skipped_invariants: list[dict[str, str]] = []
    seen_types: set[str] = set()
    queue = list(RESOURCE_TYPES) + list(BASES)
    while queue:
        name = queue.pop(0)
        if name in seen_types:
            continue
        seen_types.add(name)
        sd = package.structure(name)
        if sd is None:
            continue
        for element in sd["snapshot"]["element"]:
            path = element["path"]
            for code in _type_codes(element):
                if code[:1].isupper() and code not in SKIP_TYPES and code not in seen_types:
                    queue.append(code)
            binding = element.get("binding") or {}
            if binding.get("strength") == "required" and path not in bindings and path not in skipped_bindings:
                types = _type_codes(element)
                kind = next((t for t in types if t in ("code", "Coding", "CodeableConcept")), None)
                if kind is None:
                    continue
                codes, why = package.expand(binding["valueSet"])
                if codes is None:
                    skipped_bindings[path] = why
                    continue
                bindings[path] = {"valueSet": binding["valueSet"], "type": kind, "codes": codes}
        for element in sd.get("differential", {}).get("element", []):
            for constraint in element.get("constraint", []):
                expression = constraint.get("expression")
                done = {i["key"] for i in invariants} | {i["key"] for i in skipped_invariants}
                if not expression or constraint["key"] in done:
                    continue
                context = element["path"]
                item = {
                    "key": constraint["key"],
                    "context": context,
                    "severity": constraint["severity"],
                    "human": constraint["human"],
                    "expression": expression,
                }
                if any(
                    x.get("url") == BEST_PRACTICE and x.get("valueBoolean") for x in constraint.get("extension", [])
                ):
                    item["bestPractice"] = True
                try:
                    compile_invariant(expression, "r5" if package.manifest["version"].startswith("5") else "r4")
                except Exception as exc:  # what fhirpathpy cannot evaluate is listed, not dropped silently
                    skipped_invariants.append({"key": constraint["key"], "context": context, "reason": str(exc)})
                    continue
                invariants.append(item)
    source = {
        "package": " + ".join(f"{m['name']} {m['version']}" for m in [package.manifest, *package.terminology]),
        "licence": package.manifest.get("license", "CC0-1.0"),
        "fhirVersion": package.manifest.get("fhirVersions", [package.manifest["version"]])[0],
    }
    valuesets = {"source": source, "bindings": dict(sorted(bindings.items())), "notEnumerated": skipped_bindings}
    inv = {"source": source, "invariants": invariants, "notEvaluated": skipped_invariants}
    return valuesets, inv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", choices=["R4", "R4B", "R5"])
    parser.add_argument("package", type=Path, help="the unpacked core package directory")
    parser.add_argument("--terminology", type=Path, action="append", default=[], help="extra code system package")
    args = parser.parse_args()
    valuesets, invariants = collect(Package(args.package, args.terminology))
    target = ROOT / "mappings" / "fhir" / args.version
    target.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Generated by tools/vendor_fhir_spec.py from the HL7 package {valuesets['source']['package']}\n"
        f"# (licence {valuesets['source']['licence']}). Do not edit: re-run the script.\n"
    )
    for name, data in (("valuesets.yaml", valuesets), ("invariants.yaml", invariants)):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
        (target / name).write_text(header + text, encoding="utf-8")
    print(f"{args.version}: {len(valuesets['bindings'])} bindings, {len(invariants['invariants'])} invariants")


if __name__ == "__main__":
    main()
