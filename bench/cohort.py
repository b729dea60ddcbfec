"""A deterministic synthetic cohort for the benchmark: N patients with realistic nephrotic-syndrome courses.

Each patient gets about 60 Observations over two years (UPCR in mg/mmol or mg/mg, home dipsticks,
albumin in g/L or g/dL, creatinine, weight, height, cyclosporine/tacrolimus troughs and unrelated
laboratory values) and about 6 drug exposures (prednisolone courses, CNIs, MMF, ACE inhibitors),
as MedicationStatement or MedicationRequest, some requests naming a Medication product of a shared
formulary. Courses are drawn from a mix of phenotypes (steroid-sensitive, infrequent and frequent
relapsers, steroid-dependent, late responders, SRNS with CNI response or resistance, multidrug
resistance, adults, under-dosed trials, sparse records) so the rules do real work, and a few records
carry the faults real exports have (duplicates with a later version, a unit the rules refuse).

The resources carry what a hospital bulk export carries (meta, identifiers, performers, encounters,
reference ranges, interpretations, dosage text), most of which fhir-ns never reads. Patient `i` is
drawn from its own seeded generator, so the first 1,000 patients of a 10,000 cohort are the 1,000
cohort. Codes come from `mappings/codes/*.yaml`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

AS_OF = date(2024, 6, 30)  # every course below ends by this day; the benchmark classifies as of it
FORMAT_VERSION = "2"  # bump when the cohort changes, so cached cohorts are regenerated
BUNDLE_PATIENTS = 100  # patients per collection Bundle in the Bundle form of the cohort
RESOURCE_TYPES = ("Patient", "Condition", "Observation", "Medication", "MedicationStatement", "MedicationRequest")

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
HOSPITAL = "https://hospital.example.org"

# kind -> (LOINC, display, UCUM code, unit display, category, reference range (low, high) or None)
LABS: dict[str, tuple[str, str, str, str, str, tuple[float, float] | None]] = {
    "upcr mg/mmol": ("34366-5", "Protein/Creatinine [Ratio] in Urine", "mg/mmol", "mg/mmol", "laboratory", (0, 20)),
    "upcr mg/mg": ("2890-2", "Protein/Creatinine [Mass Ratio] in Urine", "mg/mg", "mg/mg", "laboratory", (0, 0.2)),
    "albumin g/L": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/L", "g/L", "laboratory", (35, 50)),
    "albumin g/dL": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", "g/dL", "laboratory", (3.5, 5)),
    "creatinine umol/L": (
        "14682-9",
        "Creatinine [Moles/volume] in Serum or Plasma",
        "umol/L",
        "µmol/L",
        "laboratory",
        (20, 90),
    ),
    "creatinine mg/dL": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", "laboratory", None),
    "weight": ("29463-7", "Body weight", "kg", "kg", "vital-signs", None),
    "height": ("8302-2", "Body height", "cm", "cm", "vital-signs", None),
    "cyclosporine": ("3520-4", "Cyclosporine [Mass/volume] in Blood", "ng/mL", "ng/mL", "laboratory", (80, 120)),
    "tacrolimus": ("11253-2", "Tacrolimus [Mass/volume] in Blood", "ng/mL", "ng/mL", "laboratory", (5, 10)),
    # codes fhir-ns does not use: read, counted and skipped, as in any real export
    "haemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", "laboratory", (11, 15)),
    "potassium": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", "laboratory", (3.5, 5)),
    "cholesterol": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", "laboratory", None),
}
DIPSTICK = ("20454-5", "Protein [Presence] in Urine by Test strip")
DIPSTICK_CODES = {
    "negative": ("167273002", "Urine protein test negative"),
    "trace": ("167274008", "Urine protein test = trace"),
    "1+": ("167275009", "Urine protein test = +"),
    "2+": ("167276005", "Urine protein test = ++"),
    "3+": ("167277001", "Urine protein test = +++"),
    "4+": ("167278006", "Urine protein test = ++++"),
}
# drug -> (RxNorm ingredient, ATC)
DRUGS = {
    "prednisolone": ("8638", "H02AB06"),
    "prednisone": ("8640", "H02AB07"),
    "cyclosporine": ("3008", "L04AD01"),
    "tacrolimus": ("42316", "L04AD02"),
    "mycophenolate mofetil": ("68149", "L04AA06"),
    "lisinopril": ("29046", "C09AA03"),
    "enalapril": ("3827", "C09AA02"),
    # supportive drugs the rules do not use: read, counted and skipped
    "omeprazole": ("7646", "A02BC01"),
    "calcium carbonate": ("1897", "A12AA04"),
    "cholecalciferol": ("2418", "A11CC05"),
}
RENEWAL_DAYS = 90  # long-term orders are renewed every 3 months
# The formulary: Medication products that orders name by reference.
FORMULARY = {
    "prednisolone": ("form-prednisolone-5mg", "Prednisolone 5 mg tablet", "385055001", "Tablet"),
    "cyclosporine": ("form-ciclosporin-100mg-ml", "Ciclosporin 100 mg/mL oral solution", "385023001", "Oral solution"),
    "tacrolimus": ("form-tacrolimus-1mg", "Tacrolimus 1 mg capsule", "385049006", "Capsule"),
    "mycophenolate mofetil": ("form-mmf-250mg", "Mycophenolate mofetil 250 mg capsule", "385049006", "Capsule"),
    "enalapril": ("form-enalapril-5mg", "Enalapril 5 mg tablet", "385055001", "Tablet"),
}
CONDITIONS = {
    "NS": ("52254009", "Nephrotic syndrome"),
    "childhood NS": ("705065000", "Childhood nephrotic syndrome"),
    "MCD": ("44785005", "Minimal change disease"),
    "FSGS": ("236403004", "Focal segmental glomerulosclerosis"),
    "oedema": ("267038008", "Edema"),
    "peptic ulcer": ("13200003", "Peptic ulcer"),
}
# phenotype -> weight in the mix
PHENOTYPES = {
    "ssns": 20,
    "infrequent": 12,
    "frns": 13,
    "sdns": 10,
    "late": 5,
    "cni-responsive": 9,
    "cni-resistant": 6,
    "mdr": 4,
    "adult-ssns": 6,
    "adult-srns": 4,
    "under-dosed": 4,
    "sparse": 7,
}


@dataclass(frozen=True, slots=True)
class CohortFiles:
    """Where a generated cohort lives and what it holds."""

    root: Path
    patients: int

    @property
    def ndjson(self) -> Path:
        return self.root / "ndjson"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    def ndjson_files(self) -> list[Path]:
        return sorted(self.ndjson.glob("*.ndjson"))

    def bundle_files(self) -> list[Path]:
        return sorted(self.bundles.glob("*.json"))

    def ndjson_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.ndjson_files())

    def resources(self) -> int:
        count = 0
        for path in self.ndjson_files():
            with path.open("rb") as fh:
                count += sum(1 for line in fh if line.strip())
        return count


def cohort(root: Path, patients: int, seed: int = 5) -> CohortFiles:
    """The cohort of `patients` patients under `root`, generated unless a complete one is already there."""
    files = CohortFiles(root / f"cohort-{patients}-s{seed}-v{FORMAT_VERSION}", patients)
    done = files.root / "complete"
    if not done.exists():
        write_cohort(files, seed)
        done.write_text("ok\n")
    return files


def write_cohort(files: CohortFiles, seed: int) -> None:
    """Write the cohort as bulk-export NDJSON (one file per resource type) and as collection Bundles."""
    files.ndjson.mkdir(parents=True, exist_ok=True)
    files.bundles.mkdir(parents=True, exist_ok=True)
    streams = {t: (files.ndjson / f"{t}.ndjson").open("wb") for t in RESOURCE_TYPES}
    try:
        formulary = list(_formulary())
        for resource in formulary:
            streams["Medication"].write(orjson.dumps(resource) + b"\n")
        batch: list[dict[str, Any]] = list(formulary)
        for index in range(files.patients):
            for resource in PatientStory(index, seed).resources():
                streams[resource["resourceType"]].write(orjson.dumps(resource) + b"\n")
                batch.append(resource)
            if (index + 1) % BUNDLE_PATIENTS == 0 or index + 1 == files.patients:
                number = index // BUNDLE_PATIENTS
                bundle = {
                    "resourceType": "Bundle",
                    "id": f"bench-{number:05d}",
                    "type": "collection",
                    "entry": [
                        {"fullUrl": f"{HOSPITAL}/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in batch
                    ],
                }
                (files.bundles / f"bundle-{number:05d}.json").write_bytes(orjson.dumps(bundle))
                batch = list(formulary)
    finally:
        for stream in streams.values():
            stream.close()


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


def _drug_concept(drug: str, text: str | None = None) -> dict[str, Any]:
    rxcui, atc = DRUGS[drug]
    return {"coding": [_coding(RXNORM, rxcui, drug), _coding(ATC, atc, drug)], "text": text or drug}


def _formulary() -> Iterator[dict[str, Any]]:
    for drug, (mid, text, form, form_display) in FORMULARY.items():
        yield {
            "resourceType": "Medication",
            "id": mid,
            "meta": {"versionId": "1", "lastUpdated": "2021-01-04T08:00:00Z"},
            "code": _drug_concept(drug, text),
            "status": "active",
            "form": {"coding": [_coding(SNOMED, form, form_display)]},
        }


def bsa(height_cm: float, weight_kg: float) -> float:
    return math.sqrt(height_cm * weight_kg / 3600)


@dataclass(slots=True)
class Episode:
    """Active disease from `start` to complete remission on `remission` (None: never remits in the record)."""

    start: int
    remission: int | None
    relapse: bool = False


class PatientStory:
    """One patient's two years, simulated in days from onset, turned into FHIR resources."""

    def __init__(self, index: int, seed: int) -> None:
        self.index = index
        self.rng = random.Random(f"fhir-ns-bench/{seed}/{index}")
        self.pid = f"bench-{self.index:07d}"
        names, weights = zip(*PHENOTYPES.items(), strict=True)
        self.phenotype = self.rng.choices(names, weights)[0]
        self.adult = self.phenotype.startswith("adult")
        age = self.rng.uniform(25, 70) if self.adult else self.rng.uniform(1.5, 14)
        self.onset = date(2021, 7, 1) + timedelta(days=self.rng.randrange(0, 365))
        self.born = self.onset - timedelta(days=round(age * 365.25))
        self.gender = self.rng.choice(("female", "male"))
        self.us_units = self.rng.random() < 0.35  # UPCR in mg/mg, albumin in g/dL, creatinine in mg/dL
        self.height = 175.0 if self.adult else 75 + 6.2 * age + self.rng.uniform(-6, 6)
        self.weight = self.rng.uniform(60, 95) if self.adult else max(9.0, 2.3 * age + 8 + self.rng.uniform(-2, 3))
        self.tz = self.rng.choice(("+01:00", "+02:00", "-05:00", "Z"))
        self.last_day = min(730, (AS_OF - self.onset).days - 1)
        self._resources: list[dict[str, Any]] = []
        self._n: dict[str, int] = {}
        self.episodes: list[Episode] = []
        self.visits: set[int] = set()
        self.partial: tuple[int, int] | None = None  # days with values between nephrotic and remission range

    # -- time and identity ------------------------------------------------------------------------
    def day(self, n: int) -> date:
        return self.onset + timedelta(days=n)

    def at(self, n: int, clock: str) -> str:
        return f"{self.day(n).isoformat()}T{clock}:00{self.tz}"

    def _new(self, rtype: str, n: int, **fields: Any) -> dict[str, Any]:
        self._n[rtype] = self._n.get(rtype, 0) + 1
        rid = f"{self.pid}-{rtype[:3].lower()}{rtype[-3:].lower()}-{self._n[rtype]:04d}"
        resource: dict[str, Any] = {
            "resourceType": rtype,
            "id": rid,
            "meta": {
                "versionId": "1",
                "lastUpdated": f"{self.day(max(n, 0)).isoformat()}T19:{self.rng.randrange(60):02d}:00Z",
            },
            **fields,
        }
        self._resources.append(resource)
        return resource

    def _subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def _encounter(self, n: int) -> dict[str, str]:
        return {"reference": f"Encounter/{self.pid}-enc-{max(n, 0):04d}"}

    # -- observations -----------------------------------------------------------------------------
    def lab(self, kind: str, n: int, value: float, clock: str = "08:40") -> dict[str, Any]:
        code, display, unit, unit_display, category, normal = LABS[kind]
        fields: dict[str, Any] = {
            "status": "final",
            "category": [{"coding": [_coding(OBS_CATEGORY, category, category.replace("-", " ").title())]}],
            "code": {"coding": [_coding(LOINC, code, display)], "text": display},
            "subject": self._subject(),
            "effectiveDateTime": self.at(n, clock),
            "issued": f"{self.day(n).isoformat()}T15:12:00Z",
            "performer": [{"reference": "Organization/lab-central"}],
            "valueQuantity": _quantity(value, unit, unit_display),
        }
        if normal is not None:
            low, high = normal
            flag = "H" if value > high else ("L" if value < low else "N")
            words = {"H": "High", "L": "Low", "N": "Normal"}[flag]
            fields["interpretation"] = [{"coding": [_coding(INTERPRETATION, flag, words)]}]
            fields["referenceRange"] = [{"text": f"{low:g}-{high:g} {unit_display}"}]
        return self._new("Observation", n, **fields)

    def dipstick(self, n: int, grade: str) -> None:
        value: dict[str, Any] = {"coding": [_coding(SNOMED, *DIPSTICK_CODES[grade])], "text": grade}
        if self.rng.random() < 0.3:
            value = {"text": grade}  # a parent's home diary: text only
        self._new(
            "Observation",
            n,
            status="final",
            category=[{"coding": [_coding(OBS_CATEGORY, "laboratory", "Laboratory")]}],
            code={"coding": [_coding(LOINC, *DIPSTICK)], "text": "Urine protein dipstick"},
            subject=self._subject(),
            effectiveDateTime=self.at(n, "07:15"),
            performer=[{"reference": f"RelatedPerson/{self.pid}-parent", "display": "Parent"}],
            valueCodeableConcept=value,
            note=[{"text": "Home dipstick, first morning urine"}],
        )

    def upcr(self, n: int, mg_mmol: float) -> None:
        if self.us_units:
            self.lab("upcr mg/mg", n, round(mg_mmol / 113.12, 2), "08:10")
        else:
            self.lab("upcr mg/mmol", n, round(mg_mmol), "08:10")

    def albumin(self, n: int, g_l: float) -> None:
        if self.us_units:
            self.lab("albumin g/dL", n, round(g_l / 10, 1))
        else:
            self.lab("albumin g/L", n, round(g_l))

    def creatinine(self, n: int, umol_l: float) -> None:
        if self.us_units:
            self.lab("creatinine mg/dL", n, round(umol_l / 88.4, 2))
        else:
            self.lab("creatinine umol/L", n, round(umol_l))

    def body(self, n: int, height: bool) -> None:
        grown = n / 365.25 * (0 if self.adult else 5.5)
        self.lab("weight", n, round(self.weight + grown / 2 + self.rng.uniform(-0.4, 0.4), 1), "08:30")
        if height:
            self.lab("height", n, round(self.height + grown, 1), "08:30")

    # -- drugs ------------------------------------------------------------------------------------
    def _dosage(self, drug: str, mg: float, per_day: int, every: int, bounds: tuple[int, int] | None) -> dict[str, Any]:
        how = {1: "once daily", 2: "twice daily"}[per_day] if every == 1 else "on alternate days"
        repeat: dict[str, Any] = {"frequency": per_day, "period": every, "periodUnit": "d"}
        if bounds is not None:
            repeat = {
                "boundsPeriod": {"start": self.day(bounds[0]).isoformat(), "end": self.day(bounds[1]).isoformat()},
                **repeat,
            }
        return {
            "sequence": 1,
            "text": f"{drug} {mg:g} mg orally {how}",
            "timing": {"repeat": repeat},
            "route": {"coding": [_coding(SNOMED, "26643006", "Oral route")]},
            "doseAndRate": [
                {
                    "type": {
                        "coding": [
                            _coding("http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered")
                        ]
                    },
                    "doseQuantity": _quantity(mg, "mg"),
                }
            ],
        }

    def drug(self, drug: str, start: int, end: int, mg: float, per_day: int = 1, every: int = 1) -> None:
        """A course from day `start` to `end` inclusive: a statement, an order by code, or an order by product."""
        end = min(end, self.last_day)
        if end < start:
            return
        status = "completed" if self.day(end) < AS_OF - timedelta(days=1) else "active"
        roll = self.rng.random()
        if roll < 0.45:
            self._new(
                "MedicationStatement",
                start,
                status=status,
                medicationCodeableConcept=_drug_concept(drug),
                subject=self._subject(),
                effectivePeriod={"start": self.day(start).isoformat(), "end": self.day(end).isoformat()},
                dateAsserted=self.at(end, "12:00"),
                informationSource={"reference": f"Practitioner/{self.pid[-2:]}-nephro", "display": "Nephrologist"},
                dosage=[self._dosage(drug, mg, per_day, every, None)],
            )
            return
        if end - start >= RENEWAL_DAYS + 30:
            for first in range(start, end + 1, RENEWAL_DAYS):
                self._order(drug, first, min(end, first + RENEWAL_DAYS - 1), mg, per_day, every, roll > 0.8)
            return
        self._order(drug, start, end, mg, per_day, every, roll > 0.8)

    def _order(self, drug: str, start: int, end: int, mg: float, per_day: int, every: int, by_product: bool) -> None:
        status = "completed" if self.day(end) < AS_OF - timedelta(days=1) else "active"
        by_product = by_product and drug in FORMULARY
        medication = (
            {"medicationReference": {"reference": f"Medication/{FORMULARY[drug][0]}", "display": FORMULARY[drug][1]}}
            if by_product
            else {"medicationCodeableConcept": _drug_concept(drug)}
        )
        self._new(
            "MedicationRequest",
            start,
            identifier=[{"system": f"{HOSPITAL}/orders", "value": f"{self.pid}-{start}-{drug[:4]}"}],
            status=status,
            intent="order",
            **medication,
            subject=self._subject(),
            encounter=self._encounter(start),
            authoredOn=self.at(start, "11:30"),
            requester={"reference": f"Practitioner/{self.pid[-2:]}-nephro", "display": "Nephrologist"},
            dosageInstruction=[self._dosage(drug, mg, per_day, every, (start, end))],
            dispenseRequest={
                "validityPeriod": {"start": self.day(start).isoformat(), "end": self.day(end).isoformat()},
                "numberOfRepeatsAllowed": 0,
            },
        )

    def prednisolone(self, start: int, end: int, per_m2: float, cap: float, every: int = 1) -> None:
        mg = min(cap, round(per_m2 * bsa(self.height, self.weight) / 5) * 5)
        name = "prednisone" if self.adult else "prednisolone"
        if self.adult:
            mg = min(80.0, round(self.weight / 5) * 5)
        self.drug(name, start, end, mg, every=every)

    # -- the course -------------------------------------------------------------------------------
    def resources(self) -> list[dict[str, Any]]:
        patient = self._new(
            "Patient",
            -1,
            identifier=[{"system": f"{HOSPITAL}/mrn", "value": f"MRN{self.index:08d}"}],
            name=[{"use": "official", "family": f"Family{self.index % 977}", "given": [f"Given{self.index % 613}"]}],
            gender=self.gender,
            birthDate=self.born.isoformat(),
            address=[{"city": "Springfield", "country": "XX"}],
        )
        patient["id"] = self.pid
        patient["meta"]["lastUpdated"] = f"{self.onset.isoformat()}T07:00:00Z"
        story = getattr(self, "_" + self.phenotype.replace("-", "_"))
        story()
        self._visits()
        self._noise()
        return self._resources

    def _condition(self, what: str, n: int, status: str = "active") -> None:
        code, display = CONDITIONS[what]
        self._new(
            "Condition",
            n,
            clinicalStatus={"coding": [_coding(COND_CLINICAL, status)]},
            verificationStatus={"coding": [_coding(COND_VERIFICATION, "confirmed")]},
            category=[{"coding": [_coding(COND_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")]}],
            code={"coding": [_coding(SNOMED, code, display)], "text": display},
            subject=self._subject(),
            encounter=self._encounter(n),
            onsetDateTime=self.day(n).isoformat(),
            recordedDate=self.at(n, "11:00"),
        )

    def _onset(self) -> None:
        """Day 0: nephrotic-range proteinuria, low albumin, oedema; the diagnosis is recorded."""
        self.upcr(0, self.rng.uniform(350, 900))
        self.albumin(0, self.rng.uniform(12, 22))
        self.creatinine(0, self._creatinine())
        self.body(0, height=True)
        self.dipstick(0, "4+")
        self._condition("NS" if self.adult else "childhood NS", 0)

    def _creatinine(self, rise: float = 1.0) -> float:
        base = 75 if self.adult else 18 + 3.2 * (self.onset - self.born).days / 365.25
        return base * rise * self.rng.uniform(0.93, 1.07)

    def _remit(self, start: int, day: int) -> None:
        """Home dipsticks from `start` falling to trace/negative for 3 days from `day`; a UPCR in range after."""
        for n in range(start, day, 3):
            self.dipstick(n, self.rng.choice(("3+", "2+", "1+")))
        for n in range(day, day + 3):
            self.dipstick(n, self.rng.choice(("trace", "negative")))
        self.visits.add(day + 7)

    def _relapse(self, day: int) -> int:
        """Three days of 3+ at home from `day`, a UPCR, and a relapse course from the next day; returns remission day."""
        for n in range(day, day + 3):
            self.dipstick(n, self.rng.choice(("3+", "4+")))
        self.upcr(day + 2, self.rng.uniform(250, 600))
        remission = day + self.rng.randrange(8, 14)
        self.prednisolone(day + 3, remission + 3, 60, 60)
        self.prednisolone(remission + 4, remission + 31, 40, 40, every=2)
        self._remit(day + 6, remission)
        self.episodes.append(Episode(day, remission, relapse=True))
        return remission

    def _steroid_sensitive(self, relapses: list[int]) -> None:
        self._onset()
        remission = self.rng.randrange(7, 14)
        self.prednisolone(0, 41, 60, 60)
        self.prednisolone(42, 83, 40, 40, every=2)
        self._remit(4, remission)
        self.episodes.append(Episode(0, remission))
        if self.rng.random() < 0.6:
            self.drug("omeprazole", 0, 41, 10 if self.weight < 20 else 20)
            self.drug("calcium carbonate", 0, 83, 500)
            self.drug("cholecalciferol", 0, 83, 0.025)
        for day in relapses:
            if day < self.last_day - 30:
                self._relapse(day)

    def _ssns(self) -> None:
        self._steroid_sensitive([])

    def _infrequent(self) -> None:
        self._steroid_sensitive([self.rng.randrange(250, 420)])

    def _frns(self) -> None:
        first = self.rng.randrange(100, 130)
        self._steroid_sensitive([first, first + self.rng.randrange(50, 70), first + self.rng.randrange(200, 260)])

    def _sdns(self) -> None:
        # relapses during the alternate-day taper and soon after stopping the relapse course: steroid-dependent
        first = self.rng.randrange(60, 80)
        self._steroid_sensitive([first, first + 45 + self.rng.randrange(0, 8)])
        self.drug("mycophenolate mofetil", first + 120, self.last_day, self._per_m2(600, 250), per_day=2)

    def _late(self) -> None:
        self._onset()
        self.prednisolone(0, 41, 60, 60)
        self.prednisolone(42, 83, 40, 40, every=2)
        remission = self.rng.randrange(33, 40)
        self.partial = (21, remission)
        self._remit(30, remission)
        self.episodes.append(Episode(0, remission))

    def _per_m2(self, mg_per_m2: float, step: float) -> float:
        return max(step, round(mg_per_m2 * bsa(self.height, self.weight) / step) * step)

    def _srns(self, cni: str, responds: bool) -> None:
        self._onset()
        self.prednisolone(0, 41, 60, 60)
        self.upcr(27, self.rng.uniform(300, 650))
        self.albumin(27, self.rng.uniform(14, 22))
        self.drug("enalapril" if self.rng.random() < 0.5 else "lisinopril", 28, self.last_day, 5)
        self._condition("FSGS" if self.rng.random() < 0.5 else "MCD", 35)
        if cni == "cyclosporine":
            self.drug(cni, 42, 42 + 365, self._per_m2(80, 25), per_day=2)
        else:
            self.drug(cni, 42, 42 + 365, max(0.5, round(self.weight * 0.05 * 2) / 2), per_day=2)
        low, high = (80, 120) if cni == "cyclosporine" else (5, 10)
        for n in range(49, min(42 + 365, self.last_day), 28):
            self.lab(cni, n, round(self.rng.uniform(low * 0.9, high * 1.1), 1), "07:45")
        if responds:
            remission = self.rng.randrange(70, 120)
            self.partial = (60, remission)
            self.upcr(remission, self.rng.uniform(5, 18))
            self.episodes.append(Episode(0, remission))
        else:
            self.episodes.append(Episode(0, None))

    def _cni_responsive(self) -> None:
        self._srns(self.rng.choice(("cyclosporine", "tacrolimus")), responds=True)

    def _cni_resistant(self) -> None:
        self._srns("cyclosporine", responds=False)

    def _mdr(self) -> None:
        self._srns(self.rng.choice(("cyclosporine", "tacrolimus")), responds=False)
        self.drug("mycophenolate mofetil", 240, self.last_day, self._per_m2(600, 250), per_day=2)

    def _adult_ssns(self) -> None:
        if self.rng.random() < 0.25:
            self._condition("peptic ulcer", -self.rng.randrange(10, 60))
        self._onset()
        self.prednisolone(7, 7 + 16 * 7, 0, 0)
        remission = self.rng.randrange(30, 60)
        self.upcr(remission, self.rng.uniform(5, 25))
        self.albumin(remission, self.rng.uniform(36, 42))
        self.creatinine(remission, self._creatinine())
        self.episodes.append(Episode(0, remission))

    def _adult_srns(self) -> None:
        self._onset()
        self.drug("lisinopril", 0, self.last_day, 10)
        self.prednisolone(7, 7 + 16 * 7, 0, 0)
        self._condition("FSGS", 12)
        self.episodes.append(Episode(0, None))

    def _under_dosed(self) -> None:
        self._onset()
        mg = max(5.0, round(30 * bsa(self.height, self.weight) / 5) * 5)
        self.drug("prednisolone", 0, 41, mg)
        self.upcr(27, self.rng.uniform(250, 500))
        self.albumin(27, self.rng.uniform(15, 24))
        self.episodes.append(Episode(0, None))

    def _sparse(self) -> None:
        """Referred late, few values, no steroid on record: often not enough to classify."""
        self._onset()
        self.episodes.append(Episode(0, None if self.rng.random() < 0.5 else self.rng.randrange(40, 90)))

    def _in_remission(self, n: int) -> bool:
        state = False
        for episode in self.episodes:
            if episode.start <= n:
                state = episode.remission is not None and episode.remission <= n
        return state

    def _visits(self) -> None:
        """Clinic visits: weekly early on, then every 4-10 weeks; UPCR, albumin, creatinine, weight."""
        days = {28, 56, 84} | self.visits
        n = 84
        while n < self.last_day:
            n += self.rng.randrange(60, 110)
            days.add(n)
        nephrotoxic = self.phenotype in ("cni-responsive", "mdr") and self.rng.random() < 0.3
        for n in sorted(d for d in days if 0 < d <= self.last_day):
            remitted = self._in_remission(n)
            if remitted:
                upcr, albumin = self.rng.uniform(4, 19), self.rng.uniform(35, 45)
            elif self.partial and self.partial[0] <= n < self.partial[1]:
                upcr, albumin = self.rng.uniform(40, 180), self.rng.uniform(28, 34)
            else:
                upcr, albumin = self.rng.uniform(250, 800), self.rng.uniform(12, 24)
            if self.adult and not remitted:
                upcr = max(upcr, 320)
            self.upcr(n, upcr)
            self.albumin(n, albumin)
            if n % 3 == 0 or nephrotoxic:
                self.creatinine(n, self._creatinine(1.4 if nephrotoxic and n > 90 else 1.0))
            if self.rng.random() < 0.6:
                self.body(n, height=n % 3 == 0)
        for n in range(30, self.last_day, 365):
            self.lab("haemoglobin", n, round(self.rng.uniform(10.5, 14), 1))
            self.lab("potassium", n, round(self.rng.uniform(3.6, 4.9), 1))
            if self.rng.random() < 0.5:
                self.lab("cholesterol", n, round(self.rng.uniform(150, 380)))

    def _noise(self) -> None:
        """What real exports carry: a later version of a resource (duplicate), rarely a unit the rules refuse."""
        roll = self.rng.random()
        if roll < 0.03:
            again = orjson.loads(orjson.dumps(self._resources[2]))
            again["meta"]["versionId"] = "2"
            again["meta"]["lastUpdated"] = again["meta"]["lastUpdated"].replace("T19", "T21")
            self._resources.append(again)
        elif roll < 0.04:
            bad = self.lab("albumin g/L", 5, 30)
            bad["valueQuantity"] = _quantity(3.0, "mg/mg")
