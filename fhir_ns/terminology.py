"""Code tables and units from `mappings/`: which codes mean which concept or drug, and how to convert.

The built-in tables ship with the package; a site adds its own codes by putting files of the same
shape in a directory passed as `--mappings DIR` (or FHIR_NS_MAPPINGS). Everything is data: this
module only loads, checks and indexes it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fhir_ns.errors import ConfigError


def builtin_mappings_dir() -> Path:
    """The shipped `mappings/` directory (inside the wheel, or beside the package in a checkout)."""
    packaged = Path(str(resources.files("fhir_ns"))) / "mappings"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "mappings"
    if checkout.is_dir():
        return checkout
    raise ConfigError("the built-in mappings directory is missing from this installation")


# libyaml's safe loader when PyYAML has it: the same data, read ten times faster (half a second of every start)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path.name}: cannot read mapping file: {exc}") from exc


@dataclass(frozen=True, slots=True)
class UnitRule:
    family: str
    factor: float


@dataclass(frozen=True, slots=True)
class Concept:
    name: str
    label: str
    units: dict[str, UnitRule]
    family_conversions: dict[tuple[str, str], float]
    plausible: dict[str, tuple[float, float]]
    ordinal: bool = False
    genetic: bool = False
    panel: bool = False  # values in Observation.component, each coded with its own concept
    # a word in the Observation's code text or displays that makes it another concept ("fasting" -> glucose-fasting)
    stated: dict[str, str] = field(default_factory=dict)
    equation: str | None = None  # an eGFR: the equation the lab used ("CKD-EPI 2021")
    equation_for: str | None = None  # ... and the population it was made for: "adult" | "child"

    def unit_rule(self, unit: str | None) -> UnitRule | None:
        if unit is None:
            return None
        return self.units.get(unit) or self.units.get(unit.replace(" ", ""))


@dataclass(frozen=True, slots=True)
class Drug:
    name: str
    drug_class: str
    names: tuple[str, ...]
    prednisone_equivalent: float | None
    display: str = ""  # the name people write ("mycophenolate mofetil"); the id when none is given
    dosed_as: tuple[str, float] | None = None  # (drug, mg of it per mg of this one) for that drug's dose ranges


@dataclass(frozen=True, slots=True)
class ProcedureConcept:
    name: str
    display: str
    names: tuple[str, ...]
    therapy: bool = False  # a treatment period of its own (plasma exchange)
    kidney_failure: bool = False  # marks kidney failure from its start (dialysis, kidney transplant)


@dataclass(slots=True)
class Terminology:
    """All code tables, indexed for lookup by (system, code)."""

    concepts: dict[str, Concept]
    drugs: dict[str, Drug]
    steroid_sparing_classes: frozenset[str]
    class_names: dict[str, str] = field(default_factory=dict)  # drug class id -> words ("calcineurin inhibitor")
    observation_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    condition_codes: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # (system, code prefix without dots) -> concepts: ICD-10 categories match every code below them
    condition_prefixes: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    medication_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    atc_prefixes: list[tuple[str, str]] = field(default_factory=list)
    warn_unknown_atc: tuple[str, ...] = ()
    procedures: dict[str, ProcedureConcept] = field(default_factory=dict)
    procedure_codes: dict[tuple[str, str], str] = field(
        default_factory=dict
    )  # ATC groups whose unmapped codes are a warning (L01, L04, H02)
    gene_codes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    pathogenic_answers: set[tuple[str, str]] = field(default_factory=set)
    dipstick_grades: list[str] = field(default_factory=list)
    dipstick_synonyms: dict[str, int] = field(default_factory=dict)
    dipstick_codes: dict[tuple[str, str], int] = field(default_factory=dict)
    dipstick_mg_dl_bounds: list[tuple[float, int]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # a medication's status reason saying it was stopped for an adverse effect: codes, and words of its text
    adverse_stop_reasons: set[tuple[str, str]] = field(default_factory=set)
    adverse_stop_words: list[str] = field(default_factory=list)
    _patterns: list[tuple[tuple[str, str], re.Pattern[str]]] | None = field(default=None, repr=False)

    # -- lookups -------------------------------------------------------------------------------
    def grade_index(self, name: str) -> int:
        try:
            return self.dipstick_grades.index(name)
        except ValueError as exc:
            raise ConfigError(f"unknown dipstick grade {name!r}; known: {', '.join(self.dipstick_grades)}") from exc

    def grade_from_text(self, text: str) -> int | None:
        return self.dipstick_synonyms.get(_norm(text))

    def grade_from_mg_dl(self, value: float) -> int:
        grade = 0
        for bound, index in self.dipstick_mg_dl_bounds:
            if value >= bound:
                grade = index
        return grade

    def condition_concepts(self, system: str, code: str) -> frozenset[str]:
        """The concepts a condition code maps to: its own row, and every code prefix it starts with."""
        concepts = self.condition_codes.get((system, code), frozenset())
        if self.condition_prefixes:
            bare = code.replace(".", "").upper()
            for length in range(1, len(bare) + 1):
                concepts |= self.condition_prefixes.get((system, bare[:length]), frozenset())
        return concepts

    def drug_for_code(self, system: str, code: str) -> str | None:
        drug = self.medication_codes.get((system, code))
        if drug is None and system == ATC:
            for prefix, name in self.atc_prefixes:
                if code.startswith(prefix):
                    return name
        return drug

    def drug_for_text(self, text: str) -> str | None:
        """The drug a generic or brand name in `text` names (whole words, any case; the longest name wins)."""
        best: tuple[int, str] | None = None
        for name, pattern in self._name_patterns():
            if (best is None or len(name[0]) > best[0]) and pattern.search(text):
                best = (len(name[0]), name[1])
        return best[1] if best else None

    def _name_patterns(self) -> list[tuple[tuple[str, str], re.Pattern[str]]]:
        if self._patterns is None:
            self._patterns = [
                ((name, drug.name), _whole_word(name)) for drug in self.drugs.values() for name in drug.names
            ]
        return self._patterns

    def procedure_for_text(self, text: str) -> str | None:
        """The procedure concept a name in `text` names (whole words, any case; the longest name wins)."""
        best: tuple[int, str] | None = None
        for concept in self.procedures.values():
            for name in concept.names:
                if (best is None or len(name) > best[0]) and _whole_word(name).search(text):
                    best = (len(name), concept.name)
        return best[1] if best else None

    def unknown_atc_group(self, system: str, code: str) -> str | None:
        """The warned-of ATC group (L01, L04, H02) an ATC code lies in, when no known drug has it."""
        if system != ATC:
            return None
        return next((group for group in self.warn_unknown_atc if code.upper().startswith(group)), None)

    def drug_name(self, drug: str) -> str:
        """The drug as a clinician writes it ("ACE inhibitor"), for the sentences; the id if unknown."""
        known = self.drugs.get(drug)
        return known.display if known is not None and known.display else drug

    def class_name(self, drug_class: str) -> str:
        """A drug class as a clinician writes it ("anti-CD20 antibody"); the id if none is given."""
        return self.class_names.get(drug_class, drug_class)

    def drug_names(self, drugs: Iterable[str]) -> str:
        """Several drugs by name, joined with "and"."""
        return " and ".join(self.drug_name(d) for d in drugs)

    # -- loading ---------------------------------------------------------------------------------
    def _add_code_file(self, path: Path) -> None:
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path.name}: a code table must be a mapping with observations/conditions/medications/genes"
            )
        known = {
            "observations",
            "conditions",
            "condition_prefixes",
            "medications",
            "atc_prefixes",
            "genes",
            "pathogenic_answers",
            "adverse_stop_reasons",
            "adverse_stop_words",
            "procedures",
        }
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path.name}: unknown section(s) {sorted(unknown)}; expected some of {sorted(known)}")
        for row in data.get("observations") or []:
            concept = _field(row, "concept", path)
            if concept not in self.concepts:
                raise ConfigError(f"{path.name}: code {row.get('code')} maps to unknown concept {concept!r}")
            self.observation_codes[(_field(row, "system", path), str(_field(row, "code", path)))] = concept
        for row in data.get("conditions") or []:
            self.condition_codes[(_field(row, "system", path), str(_field(row, "code", path)))] = frozenset(
                _field(row, "concepts", path)
            )
        for row in data.get("condition_prefixes") or []:
            key = (_field(row, "system", path), str(_field(row, "prefix", path)).replace(".", "").upper())
            self.condition_prefixes[key] = self.condition_prefixes.get(key, frozenset()) | frozenset(
                _field(row, "concepts", path)
            )
        for row in data.get("medications") or []:
            drug = _field(row, "drug", path)
            if drug not in self.drugs:
                raise ConfigError(f"{path.name}: code {row.get('code')} maps to unknown drug {drug!r}")
            self.medication_codes[(_field(row, "system", path), str(_field(row, "code", path)))] = drug
        for row in data.get("procedures") or []:
            concept = _field(row, "concept", path)
            if concept not in self.procedures:
                raise ConfigError(f"{path.name}: code {row.get('code')} maps to unknown procedure {concept!r}")
            self.procedure_codes[(_field(row, "system", path), str(_field(row, "code", path)))] = concept
        for row in data.get("atc_prefixes") or []:
            self.atc_prefixes.append((str(_field(row, "prefix", path)), _field(row, "drug", path)))
        for row in data.get("genes") or []:
            key = (_field(row, "system", path), str(_field(row, "code", path)))
            self.gene_codes[key] = (_field(row, "concept", path), str(row.get("display", key[1])))
        for row in data.get("pathogenic_answers") or []:
            self.pathogenic_answers.add((_field(row, "system", path), str(_field(row, "code", path))))
        for row in data.get("adverse_stop_reasons") or []:
            self.adverse_stop_reasons.add((_field(row, "system", path), str(_field(row, "code", path))))
        self.adverse_stop_words += [_norm(str(w)) for w in data.get("adverse_stop_words") or []]
        self.sources.append(path.name)


ATC = "http://www.whocc.no/atc"
SITE_DEFINITION_FILES = {"drugs.yaml", "procedures.yaml"}  # a site's whole drugs and procedures, not code tables


@cache
def _whole_word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE)


def _norm(text: str) -> str:
    return "".join(text.lower().split())


def _field(row: Any, name: str, path: Path) -> Any:
    if not isinstance(row, dict) or name not in row:
        raise ConfigError(f"{path.name}: every row needs {name!r}: {row!r}")
    return row[name]


def _load_concepts(path: Path) -> dict[str, Concept]:
    out: dict[str, Concept] = {}
    for name, spec in (load_yaml(path) or {}).get("concepts", {}).items():
        conversions = {(c["from"], c["to"]): float(c["factor"]) for c in spec.get("family_conversions", []) or []}
        out[name] = Concept(
            name=name,
            label=spec.get("label", name),
            units={u: UnitRule(r["family"], float(r["factor"])) for u, r in (spec.get("units") or {}).items()},
            family_conversions=conversions,
            plausible={f: (float(lo), float(hi)) for f, (lo, hi) in (spec.get("plausible") or {}).items()},
            ordinal=bool(spec.get("ordinal", False)),
            genetic=bool(spec.get("genetic", False)),
            panel=bool(spec.get("panel", False)),
            stated={str(word).lower(): str(other) for word, other in (spec.get("stated") or {}).items()},
            equation=spec.get("equation"),
            equation_for=spec.get("equation_for"),
        )
    return out


def _load_drugs(path: Path) -> tuple[dict[str, Drug], frozenset[str], dict[str, str], tuple[str, ...]]:
    data = load_yaml(path) or {}
    if not isinstance(data, dict) or not isinstance(data.get("drugs", {}), dict):
        raise ConfigError(f"{path}: a drug table must be a mapping with a 'drugs' mapping of id -> drug")
    drugs = {}
    for name, spec in (data.get("drugs") or {}).items():
        if not isinstance(spec, dict) or "class" not in spec:
            raise ConfigError(f"{path}: drug {name!r} needs a 'class'")
        dosed_as = spec.get("dosed_as")
        drugs[name] = Drug(
            name=name,
            drug_class=spec["class"],
            names=tuple(n.lower() for n in spec.get("names", [])),
            prednisone_equivalent=spec.get("prednisone_equivalent"),
            display=spec.get("display") or name,
            dosed_as=(str(dosed_as["drug"]), float(dosed_as["factor"])) if isinstance(dosed_as, dict) else None,
        )
    return (
        drugs,
        frozenset(data.get("steroid_sparing_classes", [])),
        dict(data.get("class_names") or {}),
        tuple(str(g) for g in data.get("warn_unknown_atc") or ()),
    )


def _load_procedures(path: Path) -> dict[str, ProcedureConcept]:
    data = load_yaml(path) or {}
    return {
        name: ProcedureConcept(
            name=name,
            display=spec.get("display") or name,
            names=tuple(n.lower() for n in spec.get("names", [])),
            therapy=bool(spec.get("therapy", False)),
            kidney_failure=bool(spec.get("kidney_failure", False)),
        )
        for name, spec in (data.get("procedures") or {}).items()
    }


def _add_site_drugs(term: Terminology, path: Path) -> None:
    """A site's drugs.yaml: whole drugs (class, names, equivalence) added to, or replacing, the built-in ones."""
    drugs, sparing, class_names, warn = _load_drugs(path)
    term.drugs.update(drugs)
    term.steroid_sparing_classes = term.steroid_sparing_classes | sparing
    term.class_names.update(class_names)
    term.warn_unknown_atc = tuple(dict.fromkeys([*term.warn_unknown_atc, *warn]))
    term.sources.append(path.name)


def extra_mapping_dirs(explicit: tuple[str, ...] = ()) -> tuple[Path, ...]:
    """Site mapping directories: those named on the command line, then FHIR_NS_MAPPINGS (os.pathsep list)."""
    env = os.environ.get("FHIR_NS_MAPPINGS", "")
    names = list(explicit) + [p for p in env.split(os.pathsep) if p]
    dirs = []
    for name in names:
        path = Path(name)
        if not path.is_dir():
            raise ConfigError(f"mapping directory {name} does not exist")
        dirs.append(path)
    return tuple(dirs)


@cache
def load_terminology(extra_dirs: tuple[Path, ...] = ()) -> Terminology:
    """Load the built-in tables, then each site directory's `*.yaml` code tables on top."""
    base = builtin_mappings_dir()
    concepts = _load_concepts(base / "concepts.yaml")
    drugs, sparing, class_names, warn = _load_drugs(base / "drugs.yaml")
    term = Terminology(
        concepts=concepts,
        drugs=drugs,
        steroid_sparing_classes=sparing,
        class_names=class_names,
        warn_unknown_atc=warn,
        procedures=_load_procedures(base / "procedures.yaml"),
    )
    dip = load_yaml(base / "dipstick.yaml")
    for index, grade in enumerate(dip["grades"]):
        term.dipstick_grades.append(grade["name"])
        for synonym in [grade["name"], *grade.get("synonyms", [])]:
            term.dipstick_synonyms[_norm(str(synonym))] = index
        for coded in grade.get("codes", []) or []:
            system, _, code = str(coded).rpartition("|")
            term.dipstick_codes[(system, code)] = index
    term.dipstick_mg_dl_bounds = sorted(
        (float(bound), term.grade_index(name)) for name, bound in dip["mg_per_dl_lower_bounds"].items()
    )
    for path in sorted((base / "codes").glob("*.yaml")):
        term._add_code_file(path)
    for directory in extra_dirs:  # a site's drugs and procedures first, so its codes may map to them
        if (directory / "drugs.yaml").is_file():
            _add_site_drugs(term, directory / "drugs.yaml")
        if (directory / "procedures.yaml").is_file():
            term.procedures.update(_load_procedures(directory / "procedures.yaml"))
    for directory in extra_dirs:
        files = sorted(directory.glob("*.yaml")) + sorted((directory / "codes").glob("*.yaml"))
        for path in files:
            if path.name not in SITE_DEFINITION_FILES or path.parent != directory:
                term._add_code_file(path)
    for drug in term.drugs.values():
        if drug.dosed_as is not None and drug.dosed_as[0] not in term.drugs:
            raise ConfigError(f"drug {drug.name!r} is dosed as unknown drug {drug.dosed_as[0]!r}")
    return term
