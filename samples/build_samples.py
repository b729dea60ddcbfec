#!/usr/bin/env python3
"""Write the fhir-ns sample data: one FHIR R4 Bundle per phenotype, a bulk-export style NDJSON cohort,
and the answers the classifier is expected to give for each (expected.json, cohort-expected.json).

Deterministic: fixed dates, ids derived from the sample's name, no randomness. Every clinical story is
written as days from onset ("day 0" = first nephrotic-range proteinuria); doses of prednis(ol)one and
of steroid-sparing agents are computed from the weight and height recorded in the same story
(BSA by Mosteller, RULES.md section 6).

    python samples/build_samples.py          # rewrites samples/bundles, samples/cohort.ndjson and the answers
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
BASE_URL = "https://hospital.example.org/fhir"
UUID_NAMESPACE = uuid.UUID("6f0c5e0e-8b0a-4c55-9b38-3f1d2c6a9e41")

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
HGNC = "http://www.genenames.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# (LOINC code, display, UCUM code, UCUM display, observation category)
OBSERVATIONS: dict[str, tuple[str, str, str, str, str]] = {
    "upcr mg/mmol": ("34366-5", "Protein/Creatinine [Ratio] in Urine", "mg/mmol", "mg/mmol", "laboratory"),
    "upcr mg/mg": ("2890-2", "Protein/Creatinine [Mass Ratio] in Urine", "mg/mg", "mg/mg", "laboratory"),
    "upcr mg/g": ("2890-2", "Protein/Creatinine [Mass Ratio] in Urine", "mg/g", "mg/g", "laboratory"),
    "protein-24h": ("2889-4", "Protein [Mass/time] in 24 hour Urine", "g/(24.h)", "g/24 h", "laboratory"),
    "albumin g/L": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/L", "g/L", "laboratory"),
    "albumin g/dL": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", "g/dL", "laboratory"),
    "creatinine umol/L": ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", "µmol/L", "laboratory"),
    "creatinine mg/dL": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", "laboratory"),
    "weight": ("29463-7", "Body weight", "kg", "kg", "vital-signs"),
    "height": ("8302-2", "Body height", "cm", "cm", "vital-signs"),
    "cyclosporine": ("3520-4", "Cyclosporine [Mass/volume] in Blood", "ng/mL", "ng/mL", "laboratory"),
    "tacrolimus": ("11253-2", "Tacrolimus [Mass/volume] in Blood", "ng/mL", "ng/mL", "laboratory"),
    "bp-systolic": ("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg", "vital-signs"),
    "bp-diastolic": ("8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg", "vital-signs"),
    "glucose-fasting": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", "laboratory"),
    "glucose": ("14749-6", "Glucose [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", "laboratory"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", "laboratory"),
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
DIPSTICK = ("20454-5", "Protein [Presence] in Urine by Test strip")
# SNOMED urine protein test findings (mappings/dipstick.yaml)
DIPSTICK_CODES = {
    "negative": ("167273002", "Urine protein test negative"),
    "trace": ("167274008", "Urine protein test = trace"),
    "1+": ("167275009", "Urine protein test = +"),
    "2+": ("167276005", "Urine protein test = ++"),
    "3+": ("167277001", "Urine protein test = +++"),
    "4+": ("167278006", "Urine protein test = ++++"),
}
# name -> (RxNorm ingredient RXCUI or None, ATC)
DRUGS: dict[str, tuple[str | None, str | None]] = {
    "prednisolone": ("8638", "H02AB06"),
    "prednisone": ("8640", "H02AB07"),
    "methylprednisolone": ("6902", "H02AB04"),
    "cyclosporine": ("3008", "L04AD01"),
    "tacrolimus": ("42316", "L04AD02"),
    "mycophenolate mofetil": ("68149", "L04AA06"),
    "cyclophosphamide": ("3002", "L01AA01"),
    "levamisole": (None, "P02CE01"),  # no confirmed RxNorm code (shared CODES.md): ATC only
    "mycophenolic acid": (None, "L04AA06"),  # ATC L04AA06 covers both salts: the name says which
    "mizoribine": (None, None),  # no confirmed code anywhere: read by its name
    "lisinopril": ("29046", "C09AA03"),
    "enalapril": ("3827", "C09AA02"),
    "losartan": ("52175", "C09CA01"),
}
ROUTES = {"oral": ("26643006", "Oral route"), "iv": ("47625008", "Intravenous route")}
FORMS = {"tablet": ("385055001", "Tablet"), "oral solution": ("385023001", "Oral solution")}
CONDITIONS = {
    "NS": ("52254009", "Nephrotic syndrome"),
    "childhood NS": ("705065000", "Childhood nephrotic syndrome"),
    "MCD": ("44785005", "Minimal change disease"),
    "FSGS": ("236403004", "Focal segmental glomerulosclerosis"),
    "oedema": ("267038008", "Edema"),
    "peptic ulcer": ("13200003", "Peptic ulcer"),
    "lupus nephritis": ("68815009", "Systemic lupus erythematosus glomerulonephritis syndrome"),
    "renal vein thrombosis": ("15842009", "Thrombosis of renal vein"),
    "pneumonia": ("233604007", "Pneumonia"),
}
TYPE_PREFIX = {
    "Observation": "obs",
    "Condition": "cond",
    "MedicationStatement": "medst",
    "MedicationRequest": "medrq",
    "MedicationAdministration": "medadm",
    "Medication": "med",
    "Procedure": "proc",
}


def bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area, Mosteller."""
    return math.sqrt(height_cm * weight_kg / 3600)


def per_m2(mg_per_m2: float, height_cm: float, weight_kg: float, cap: float | None = None, step: float = 5) -> float:
    """A dose per m2 for this child, rounded to the nearest `step` mg (what a ward would prescribe), capped."""
    value = mg_per_m2 * bsa(height_cm, weight_kg)
    if cap is not None:
        value = min(value, cap)
    return round(value / step) * step


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


class Story:
    """One patient's chart, written as days from onset; `resources()` gives the FHIR resources."""

    def __init__(
        self,
        name: str,
        pid: str,
        *,
        born: str,
        gender: str,
        given: str,
        family: str,
        onset: str,
        as_of_day: int,
        note: str,
        tz: str = "+01:00",
        upcr: str = "mg/mmol",
        albumin: str = "g/L",
        creatinine: str = "umol/L",
        classifications: list[str],
        findings: list[str] | None = None,
        ruleset: str | None = None,
        alternate: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.pid, self.tz = name, pid, tz
        self.onset = date.fromisoformat(onset)
        self.born = date.fromisoformat(born)
        self.as_of = self.day(as_of_day)
        self.units = {"upcr": upcr, "albumin": albumin, "creatinine": creatinine}
        self.expected: dict[str, Any] = {
            "as_of": self.as_of.isoformat(),
            "ruleset": ruleset,
            "classifications": classifications,
            "findings": findings or [],
            "note": note,
        }
        if alternate:
            self.expected["alternate"] = alternate
        self._n: dict[str, int] = {}
        self.patient = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "https://hospital.example.org/mrn", "value": f"MRN-{_digits(pid)}"}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": gender,
            "birthDate": born,
        }
        self._resources: list[dict[str, Any]] = [self.patient]
        self.height = self.weight = 0.0

    @property
    def default_ruleset(self) -> str:
        """The rule set fhir-ns picks by age at onset (day 0)."""
        return "ipna-2022-child" if (self.onset - self.born).days / 365.25 < 18 else "kdigo-2021-adult"

    # -- time --------------------------------------------------------------------------------------
    def day(self, n: int) -> date:
        return self.onset + timedelta(days=n)

    def at(self, n: int, clock: str = "09:30") -> str:
        return f"{self.day(n).isoformat()}T{clock}:00{self.tz}"

    # -- building blocks -------------------------------------------------------------------------
    def _new(self, rtype: str, **fields: Any) -> dict[str, Any]:
        self._n[rtype] = self._n.get(rtype, 0) + 1
        resource = {"resourceType": rtype, "id": f"{self.pid}-{TYPE_PREFIX[rtype]}-{self._n[rtype]:03d}", **fields}
        self._resources.append(resource)
        return resource

    def _subject(self) -> dict[str, Any]:
        return {"reference": f"Patient/{self.pid}"}

    def observation(self, kind: str, n: int, value: float, clock: str = "08:40") -> dict[str, Any]:
        code, display, unit, unit_display, category = OBSERVATIONS[kind]
        return self._new(
            "Observation",
            status="final",
            category=[{"coding": [_coding(OBS_CATEGORY, category, category.replace("-", " ").title())]}],
            code={"coding": [_coding(LOINC, code, display)], "text": display},
            subject=self._subject(),
            effectiveDateTime=self.at(n, clock),
            valueQuantity=_quantity(value, unit, unit_display),
        )

    def upcr(self, n: int, value: float) -> Story:
        self.observation(f"upcr {self.units['upcr']}", n, value, "08:10")
        return self

    def albumin(self, n: int, value: float) -> Story:
        self.observation(f"albumin {self.units['albumin']}", n, value)
        return self

    def creatinine(self, n: int, value: float) -> Story:
        self.observation(f"creatinine {self.units['creatinine']}", n, value)
        return self

    def labs(
        self, n: int, upcr: float | None = None, albumin: float | None = None, creatinine: float | None = None
    ) -> Story:
        """A clinic visit's laboratory panel (any of UPCR, albumin, creatinine)."""
        if upcr is not None:
            self.upcr(n, upcr)
        if albumin is not None:
            self.albumin(n, albumin)
        if creatinine is not None:
            self.creatinine(n, creatinine)
        return self

    def protein_24h(self, n: int, grams: float) -> Story:
        self.observation("protein-24h", n, grams, "10:00")
        return self

    def body(self, n: int, weight: float, height: float) -> Story:
        self.weight, self.height = weight, height
        self.observation("weight", n, weight, "08:30")
        self.observation("height", n, height, "08:30")
        return self

    def level(self, drug: str, n: int, value: float) -> Story:
        """A calcineurin-inhibitor blood level drawn before the morning dose (trough)."""
        self.observation(drug, n, value, "07:45")
        return self

    def blood_pressure(self, n: int, systolic: float, diastolic: float, panel: bool = True) -> Story:
        """An office blood pressure: the 85354-9 panel with its two components, or two separate Observations."""
        if not panel:
            self.observation("bp-systolic", n, systolic, "10:15")
            self.observation("bp-diastolic", n, diastolic, "10:15")
            return self
        components = []
        for kind, value in (("bp-systolic", systolic), ("bp-diastolic", diastolic)):
            code, display, unit, unit_display, _ = OBSERVATIONS[kind]
            components.append(
                {
                    "code": {"coding": [_coding(LOINC, code, display)]},
                    "valueQuantity": _quantity(value, unit, unit_display),
                }
            )
        self._new(
            "Observation",
            status="final",
            category=[{"coding": [_coding(OBS_CATEGORY, "vital-signs", "Vital Signs")]}],
            code={"coding": [_coding(LOINC, *BP_PANEL)], "text": "Blood pressure"},
            subject=self._subject(),
            effectiveDateTime=self.at(n, "10:15"),
            component=components,
        )
        return self

    def dipstick(self, n: int, grade: str, coded: bool = True) -> Story:
        """A urine dipstick read at home or on the ward: SNOMED-coded answer, or text only."""
        value: dict[str, Any] = {"text": grade}
        if coded:
            value["coding"] = [_coding(SNOMED, *DIPSTICK_CODES[grade])]
        self._new(
            "Observation",
            status="final",
            category=[{"coding": [_coding(OBS_CATEGORY, "laboratory", "Laboratory")]}],
            code={"coding": [_coding(LOINC, *DIPSTICK)], "text": "Urine protein dipstick"},
            subject=self._subject(),
            effectiveDateTime=self.at(n, "07:15"),
            valueCodeableConcept=value,
        )
        return self

    def dipsticks(self, first: int, grades: list[str], coded: bool = True) -> Story:
        """Daily dipsticks from day `first`."""
        for i, grade in enumerate(grades):
            self.dipstick(first + i, grade, coded)
        return self

    def genetic(self, n: int, pathogenic: bool, dna: str | None = None, protein: str | None = None) -> Story:
        """An NPHS2 result from the SRNS gene panel (69548-6 with component gene, significance, HGVS)."""
        components: list[dict[str, Any]] = [
            {
                "code": {"coding": [_coding(LOINC, "48018-6", "Gene studied [ID]")]},
                "valueCodeableConcept": {"coding": [_coding(HGNC, "HGNC:13394", "NPHS2")]},
            }
        ]
        if pathogenic:
            components += [
                {
                    "code": {"coding": [_coding(LOINC, "48004-6", "DNA change (c.HGVS)")]},
                    "valueCodeableConcept": {"text": dna},
                },
                {
                    "code": {"coding": [_coding(LOINC, "48005-3", "Amino acid change (pHGVS)")]},
                    "valueCodeableConcept": {"text": protein},
                },
                {
                    "code": {"coding": [_coding(LOINC, "53034-5", "Allelic state")]},
                    "valueCodeableConcept": {"coding": [_coding(LOINC, "LA6705-3", "Homozygous")]},
                },
                {
                    "code": {"coding": [_coding(LOINC, "53037-8", "Genetic variation clinical significance [Imp]")]},
                    "valueCodeableConcept": {"coding": [_coding(LOINC, "LA6668-3", "Pathogenic")]},
                },
            ]
        present = ("LA9633-4", "Present") if pathogenic else ("LA9634-2", "Absent")
        self._new(
            "Observation",
            status="final",
            category=[{"coding": [_coding(OBS_CATEGORY, "laboratory", "Laboratory")]}],
            code={
                "coding": [_coding(LOINC, "69548-6", "Genetic variant assessment")],
                "text": "Steroid-resistant nephrotic syndrome gene panel: NPHS2",
            },
            subject=self._subject(),
            effectiveDateTime=self.at(n, "14:00"),
            valueCodeableConcept={"coding": [_coding(LOINC, *present)]},
            component=components,
        )
        return self

    def condition(
        self,
        what: str,
        n: int,
        status: str = "active",
        category: str = "encounter-diagnosis",
        abated: int | None = None,
        note: str | None = None,
    ) -> Story:
        code, display = CONDITIONS[what]
        fields: dict[str, Any] = {
            "clinicalStatus": {"coding": [_coding(COND_CLINICAL, status)]},
            "verificationStatus": {"coding": [_coding(COND_VERIFICATION, "confirmed")]},
            "category": [{"coding": [_coding(COND_CATEGORY, category)]}],
            "code": {"coding": [_coding(SNOMED, code, display)], "text": display},
            "subject": self._subject(),
            "onsetDateTime": self.day(n).isoformat(),
            "recordedDate": self.at(n, "11:00"),
        }
        if abated is not None:
            fields["abatementDateTime"] = self.day(abated).isoformat()
        if note:
            fields["note"] = [{"text": note}]
        self._new("Condition", **fields)
        return self

    # -- drugs -----------------------------------------------------------------------------------
    @staticmethod
    def _drug_concept(drug: str, text: str | None = None) -> dict[str, Any]:
        rxcui, atc = DRUGS[drug]
        codings = ([_coding(RXNORM, rxcui, drug)] if rxcui else []) + ([_coding(ATC, atc, drug)] if atc else [])
        return {"coding": codings, "text": text or drug} if codings else {"text": text or drug}

    def _dosage(
        self,
        drug: str,
        mg: float,
        per_day: int,
        every_days: int,
        route: str,
        bounds: tuple[int, int | None] | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        how = (
            {1: "once daily", 2: "twice daily", 3: "three times daily"}[per_day]
            if every_days == 1
            else f"once every {every_days} days"
            if every_days > 2
            else "on alternate days"
        )
        repeat: dict[str, Any] = {"frequency": per_day, "period": every_days, "periodUnit": "d"}
        if bounds is not None:
            period = {"start": self.day(bounds[0]).isoformat()}
            if bounds[1] is not None:
                period["end"] = self.day(bounds[1]).isoformat()
            repeat = {"boundsPeriod": period, **repeat}
        mg_text = f"{mg:g}"
        return {
            "sequence": 1,
            "text": f"{drug} {mg_text} mg {'orally' if route == 'oral' else 'intravenously'} {how}{why}",
            "timing": {"repeat": repeat},
            "route": {"coding": [_coding(SNOMED, *ROUTES[route])]},
            "doseAndRate": [{"doseQuantity": _quantity(mg, "mg")}],
        }

    def _status(self, end: int | None) -> str:
        """Completed when it ended by the evaluation date; otherwise still active (a planned end may be given)."""
        return "completed" if end is not None and self.day(end) <= self.as_of else "active"

    def taking(
        self,
        drug: str,
        start: int,
        end: int | None,
        mg: float,
        per_day: int = 1,
        every_days: int = 1,
        why: str = "",
        text: str | None = None,
    ) -> Story:
        """A MedicationStatement: the patient took `mg` per administration from day `start` to `end` (None: ongoing);
        `text` is the product as the hospital names it."""
        period = {"start": self.day(start).isoformat()}
        if end is not None:
            period["end"] = self.day(end).isoformat()
        self._new(
            "MedicationStatement",
            status=self._status(end),
            medicationCodeableConcept=self._drug_concept(drug, text),
            subject=self._subject(),
            effectivePeriod=period,
            dateAsserted=self.at(end if end is not None and self._status(end) == "completed" else start, "12:00"),
            dosage=[self._dosage(drug, mg, per_day, every_days, "oral", why=why)],
        )
        return self

    def stopped(
        self, drug: str, start: int, end: int, mg: float, because: str, per_day: int = 1, why: str = ""
    ) -> Story:
        """A MedicationStatement stopped on day `end` for an adverse effect (status reason "suspected intolerance")."""
        self._new(
            "MedicationStatement",
            status="stopped",
            statusReason=[
                {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason",
                            "sintol",
                            "Suspected intolerance",
                        )
                    ],
                    "text": because,
                }
            ],
            medicationCodeableConcept=self._drug_concept(drug),
            subject=self._subject(),
            effectivePeriod={"start": self.day(start).isoformat(), "end": self.day(end).isoformat()},
            dateAsserted=self.at(end, "12:00"),
            dosage=[self._dosage(drug, mg, per_day, 1, "oral", why=why)],
        )
        return self

    def medication(self, drug: str, text: str, form: str) -> str:
        """A Medication resource (product), returned as a reference."""
        med = self._new(
            "Medication", code=self._drug_concept(drug, text), form={"coding": [_coding(SNOMED, *FORMS[form])]}
        )
        return f"Medication/{med['id']}"

    def ordered(
        self,
        drug: str,
        start: int,
        end: int | None,
        mg: float,
        per_day: int = 1,
        every_days: int = 1,
        why: str = "",
        medication: str | None = None,
    ) -> Story:
        """A MedicationRequest (order) for day `start` to `end` (None: open-ended), by code or by a Medication."""
        med: dict[str, Any] = (
            {"medicationReference": {"reference": medication}}
            if medication
            else {"medicationCodeableConcept": self._drug_concept(drug)}
        )
        self._new(
            "MedicationRequest",
            status=self._status(end),
            intent="order",
            **med,
            subject=self._subject(),
            authoredOn=self.at(start, "11:30"),
            dosageInstruction=[self._dosage(drug, mg, per_day, every_days, "oral", (start, end), why)],
        )
        return self

    def tapered(self, drug: str, start: int, phases: list[tuple[float, int, int]], why: str = "") -> Story:
        """A MedicationRequest as hospital systems write a taper: one dosage instruction per phase
        (`sequence` 1, 2, ...), each (mg per administration, every n days, for n weeks) with its boundsDuration."""
        dosages = []
        for number, (mg, every_days, weeks) in enumerate(phases, 1):
            dosage = self._dosage(drug, mg, 1, every_days, "oral", why=f" for {weeks} weeks")
            dosage["sequence"] = number
            dosage["timing"]["repeat"]["boundsDuration"] = {"value": weeks, "unit": "wk", "system": UCUM, "code": "wk"}
            if number > 1:
                dosage["text"] = "then " + dosage["text"]
            dosages.append(dosage)
        days = sum(7 * weeks for _, _, weeks in phases)
        self._new(
            "MedicationRequest",
            status=self._status(start + days - 1),
            intent="order",
            medicationCodeableConcept=self._drug_concept(drug),
            subject=self._subject(),
            authoredOn=self.at(start, "11:30"),
            note=[{"text": f"Taper{why}"}] if why else [],
            dosageInstruction=dosages,
        )
        return self

    def ordered_range(self, drug: str, start: int, end: int, low: float, high: float, text: str) -> Story:
        """A MedicationRequest whose dose is a range ("30-60 mg once daily"), as ward protocols write it."""
        dosage = self._dosage(drug, low, 1, 1, "oral", (start, end))
        dosage["text"] = text
        dosage["doseAndRate"] = [{"doseRange": {"low": _quantity(low, "mg"), "high": _quantity(high, "mg")}}]
        self._new(
            "MedicationRequest",
            status=self._status(end),
            intent="order",
            medicationCodeableConcept=self._drug_concept(drug),
            subject=self._subject(),
            authoredOn=self.at(start, "11:30"),
            dosageInstruction=[dosage],
        )
        return self

    def infused(self, drug: str, n: int, mg: float, why: str = "") -> Story:
        """A MedicationAdministration: one intravenous pulse given over an hour on day `n`."""
        self._new(
            "MedicationAdministration",
            status="completed",
            medicationCodeableConcept=self._drug_concept(drug),
            subject=self._subject(),
            effectivePeriod={"start": self.at(n, "10:00"), "end": self.at(n, "11:00")},
            dosage={
                "text": f"{drug} {mg:g} mg intravenously over 1 hour{why}",
                "route": {"coding": [_coding(SNOMED, *ROUTES["iv"])]},
                "dose": _quantity(mg, "mg"),
            },
        )
        return self

    def procedure(self, text: str, start: int, end: int, why: str = "") -> Story:
        """A Procedure known only by its local name (no code), done from day `start` to day `end`."""
        self._new(
            "Procedure",
            status="completed",
            code={"text": text},
            subject=self._subject(),
            performedPeriod={"start": self.at(start, "09:00"), "end": self.at(end, "13:00")},
            note=[{"text": why}] if why else [],
        )
        return self

    def resources(self) -> list[dict[str, Any]]:
        return list(self._resources)


def _digits(text: str) -> str:
    return f"{uuid.uuid5(UUID_NAMESPACE, text).int % 10**7:07d}"


# -- the stories ---------------------------------------------------------------------------------------
# Standard IPNA initial course: prednisolone 60 mg/m2/day (max 60) for 6 weeks, then 40 mg/m2 (max 40) on
# alternate days for 6 weeks; a relapse: 60 mg/m2/day until remission for 3 days, then 40 mg/m2 on
# alternate days for 4 weeks.


def initial_course(s: Story, drug_start: int = 0, as_request: bool = False, medication: str | None = None) -> Story:
    daily = per_m2(60, s.height, s.weight, cap=60)
    alternate = per_m2(40, s.height, s.weight, cap=40)
    why = f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)"
    alternate_why = " (40 mg/m2 on alternate days)"
    if as_request:
        s.ordered("prednisolone", drug_start, drug_start + 41, daily, why=why, medication=medication)
        s.ordered(
            "prednisolone",
            drug_start + 42,
            drug_start + 83,
            alternate,
            every_days=2,
            why=alternate_why,
            medication=medication,
        )
    else:
        s.taking("prednisolone", drug_start, drug_start + 41, daily, why=why)
        s.taking("prednisolone", drug_start + 42, drug_start + 83, alternate, every_days=2, why=alternate_why)
    return s


def relapse_course(s: Story, start: int, remission: int, as_request: bool = True) -> int:
    """Daily prednisolone from `start` until 3 days after remission, then 4 weeks on alternate days; returns the last day."""
    daily = per_m2(60, s.height, s.weight, cap=60)
    alternate = per_m2(40, s.height, s.weight, cap=40)
    use = s.ordered if as_request else s.taking
    use(
        "prednisolone",
        start,
        remission + 2,
        daily,
        why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2) until remission for 3 days",
    )
    use(
        "prednisolone",
        remission + 3,
        remission + 30,
        alternate,
        every_days=2,
        why=" (40 mg/m2 on alternate days) for 4 weeks",
    )
    return remission + 30


def ssns(pid: str = "ssns-emma") -> Story:
    s = Story(
        "ssns",
        pid,
        born="2018-09-14",
        gender="female",
        given="Emma",
        family="Lindqvist",
        onset="2023-01-09",
        as_of_day=111,
        upcr="mg/mg",
        albumin="g/dL",
        creatinine="mg/dL",
        classifications=["ssns"],
        note="4-year-old girl, UPCR 9.8 mg/mg and albumin 1.6 g/dL; prednisolone 45 mg/day (60 mg/m2/day, BSA 0.71 m2); "
        "home dipstick trace/negative on days 8-10 (complete remission by day 8); stays in remission",
    )
    s.body(0, 17.5, 104).labs(0, upcr=9.8, albumin=1.6, creatinine=0.32).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission", note="Periorbital and leg oedema for one week.")
    s.condition("oedema", 0, status="resolved", abated=12)
    initial_course(s)
    s.dipsticks(5, ["3+", "2+", "1+", "trace", "negative", "negative", "negative"])
    s.labs(14, upcr=0.12, albumin=3.4).labs(42, upcr=0.08, albumin=4.0)
    s.body(84, 17.0, 105).labs(84, upcr=0.1, albumin=4.2, creatinine=0.3).labs(105, upcr=0.09)
    return s


def late_responder(pid: str = "late-lucas") -> Story:
    s = Story(
        "late-responder",
        pid,
        born="2017-03-02",
        gender="male",
        given="Lucas",
        family="Moreau",
        onset="2023-02-06",
        as_of_day=90,
        classifications=["ssns-late-responder"],
        note="5-year-old boy; prednisolone 50 mg/day ordered as a Medication product; partial remission at "
        "day 28 (UPCR 95 mg/mmol, albumin 31 g/L), 3 IV methylprednisolone pulses, complete remission "
        "on day 38 (inside weeks 4-6)",
    )
    s.body(0, 20.5, 112).labs(0, upcr=820, albumin=14, creatinine=28).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    tablets = s.medication("prednisolone", "Prednisolone 5 mg tablet", "tablet")
    initial_course(s, as_request=True, medication=tablets)
    s.labs(7, upcr=610, albumin=16).labs(14, upcr=380, albumin=21).labs(21, upcr=150, albumin=27)
    s.labs(28, upcr=95, albumin=31, creatinine=27)
    pulse = per_m2(600, s.height, s.weight, cap=1000, step=10)
    for n in (29, 30, 31):
        s.infused("methylprednisolone", n, pulse, why=" (600 mg/m2 pulse, partial remission at week 4)")
    s.labs(35, upcr=45, albumin=33).labs(38, upcr=14, albumin=35).labs(42, upcr=10, albumin=37)
    s.labs(84, upcr=8, albumin=40, creatinine=27)
    return s


def frns(pid: str = "frns-sofia") -> Story:
    s = Story(
        "frns",
        pid,
        born="2019-05-20",
        gender="female",
        given="Sofia",
        family="Rossi",
        onset="2023-03-13",
        as_of_day=250,
        classifications=["ssns", "frns"],
        note="3-year-old girl; complete remission on day 9; relapse on day 110 (UPCR 390, prednisolone "
        "restarted next day) and on day 176 (home dipstick 3+ x 3 days), each > 15 days after stopping "
        "steroid and each remitting: 2 relapses within 6 months of the first remission",
    )
    s.body(0, 16, 100).labs(0, upcr=640, albumin=17, creatinine=25).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)  # prednisolone to day 83
    s.labs(9, upcr=11, albumin=28).labs(42, upcr=8, albumin=38).labs(84, upcr=9, albumin=41, creatinine=24)
    # relapse 1, 27 days after stopping: one nephrotic UPCR, full-dose prednisolone from the next day
    s.body(110, 16.5, 102).labs(110, upcr=390, albumin=27).dipstick(110, "3+")
    stop = relapse_course(s, 111, 119)  # to day 149
    s.labs(119, upcr=12, albumin=33).labs(150, upcr=10, albumin=39)
    # relapse 2, 27 days after stopping: 3 consecutive days of 3+ at home
    s.dipsticks(174, ["trace", "1+", "3+", "3+", "3+"])
    s.body(178, 16.8, 102.5).labs(178, upcr=420, albumin=25)
    assert 176 - stop > 15
    relapse_course(s, 178, 186)  # to day 216
    s.dipsticks(184, ["trace", "negative", "negative"])
    s.labs(186, upcr=15, albumin=31).labs(240, upcr=9, albumin=40, creatinine=25)
    return s


def frns_ruleset_difference(pid: str = "frns-noah") -> Story:
    s = Story(
        "frns-ruleset-difference",
        pid,
        born="2016-11-03",
        gender="male",
        given="Noah",
        family="Schmidt",
        onset="2022-01-10",
        as_of_day=760,
        upcr="mg/mg",
        albumin="g/dL",
        creatinine="mg/dL",
        classifications=["ssns", "frns"],
        alternate={"ruleset": "kdigo-2021-child", "classifications": ["ssns", "infrequent-relapse"]},
        note="5-year-old boy; one relapse in the 6 months after the first remission (day 130), then relapses "
        "on days 420, 560 and 700 (3 within 12 months, never 4): frequently relapsing under IPNA "
        "(>= 3 in 12 months), infrequently relapsing under KDIGO 2021 (>= 4 in 12 months)",
    )
    s.body(0, 19, 110).labs(0, upcr=8.2, albumin=1.7, creatinine=0.3).dipstick(0, "4+", coded=False)
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)
    s.labs(10, upcr=0.15, albumin=2.9).labs(42, upcr=0.1, albumin=3.9).labs(84, upcr=0.08, albumin=4.1)
    stops: list[int] = []
    # (relapse day, growth at that visit, remission day); relapses found by one UPCR + treatment, or 3 dipsticks
    for n, weight, height, cr, by_dipstick, ordered in (
        (130, 20, 112, 139, False, False),
        (420, 21.5, 116, 428, True, True),
        (560, 22.5, 118, 568, False, True),
        (700, 23.5, 121, 708, True, False),
    ):
        if by_dipstick:
            s.dipsticks(n - 2, ["3+", "3+", "3+"], coded=False)
        s.body(n, weight, height).labs(n, upcr=5.4 if by_dipstick else 4.6, albumin=2.3)
        if stops:
            assert n - 2 - stops[-1] > 15
        stops.append(relapse_course(s, n + 1, cr, as_request=ordered))
        s.dipsticks(cr - 2, ["trace", "negative", "negative"], coded=False)
        s.labs(cr, upcr=0.12, albumin=3.3).labs(cr + 40, upcr=0.09, albumin=4.0, creatinine=0.34)
    s.body(300, 20.8, 114).labs(300, upcr=0.07, albumin=4.2, creatinine=0.32)
    return s


def sdns(pid: str = "sdns-mia", cyclophosphamide: bool = False) -> Story:
    name = "sdns-cyclophosphamide" if cyclophosphamide else "sdns"
    s = Story(
        name,
        pid,
        born="2018-02-11",
        gender="female",
        given="Mia",
        family="Novak",
        onset="2023-04-03",
        as_of_day=240 if cyclophosphamide else 170,
        classifications=["ssns", "frns", "sdns"],
        findings=["cyclophosphamide-cumulative-dose"] if cyclophosphamide else [],
        note="5-year-old girl; remission on day 9; relapse on day 64 during the alternate-day taper and on "
        "day 115, 10 days after stopping the relapse course: steroid-dependent (and, with 2 relapses "
        "within 6 months, frequently relapsing)"
        + (
            "; then oral cyclophosphamide 45 mg/day (2.4 mg/kg/day) for 12 weeks: cumulative 203 mg/kg, "
            "above the 168 mg/kg limit"
            if cyclophosphamide
            else "; levamisole started in remission"
        ),
    )
    s.body(0, 18, 108).labs(0, upcr=560, albumin=16, creatinine=27).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    daily, alternate = per_m2(60, 108, 18, cap=60), per_m2(40, 108, 18, cap=40)
    s.taking("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    s.taking("prednisolone", 42, 66, alternate, every_days=2, why=" (40 mg/m2 on alternate days; stopped at relapse)")
    s.labs(9, upcr=13, albumin=29).labs(42, upcr=9, albumin=39)
    # relapse 1 on the alternate-day taper: 3+ on 3 consecutive days (days 64-66)
    s.dipsticks(62, ["trace", "1+", "3+", "3+", "3+"])
    s.body(66, 18.5, 108.5).labs(66, upcr=350, albumin=26)
    stop = relapse_course(s, 67, 75)  # to day 105
    s.labs(75, upcr=16, albumin=31)
    # relapse 2, 10 days after stopping
    s.labs(115, upcr=460, albumin=24).dipstick(115, "4+")
    assert 115 - stop <= 15
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.ordered("prednisolone", 116, 125, daily, why=" (60 mg/m2/day) until remission for 3 days")
    s.labs(123, upcr=14, albumin=30)
    alternate = per_m2(40, s.height, s.weight, cap=40)
    if cyclophosphamide:
        s.ordered("prednisolone", 126, 209, alternate, every_days=2, why=" (40 mg/m2 on alternate days, tapered)")
        s.body(126, 18.6, 109)
        s.taking("cyclophosphamide", 130, 213, 45, why=" (2.5 mg/kg/day intended for 8 weeks; given for 12 weeks)")
        s.labs(160, upcr=10, albumin=38, creatinine=26).labs(190, upcr=9, albumin=40).labs(225, upcr=8, albumin=41)
    else:
        s.ordered("prednisolone", 126, None, alternate, every_days=2, why=" (40 mg/m2 on alternate days, slow taper)")
        s.taking("levamisole", 130, None, 45, every_days=2, why=" (2.5 mg/kg on alternate days)")
        s.labs(160, upcr=10, albumin=38, creatinine=26)
    return s


def taper_order(pid: str = "taper-lea") -> Story:
    """Steroid dependence seen only when each phase of the hospital's taper orders keeps its own dates."""
    s = Story(
        "taper-order",
        pid,
        born="2016-11-20",
        gender="female",
        given="Lea",
        family="Moreau",
        onset="2023-03-06",
        as_of_day=200,
        classifications=["ssns", "frns", "sdns"],
        note="6-year-old girl (20 kg, 115 cm); every course is one MedicationRequest with three sequenced phases "
        "(60 mg/m2/day for 4 weeks, then 40 mg/m2 on alternate days for 4 weeks, then 20 mg/m2 on alternate days "
        "for 2 weeks); remission on day 8; relapses on day 45 and day 101, each in the alternate-day phase of the "
        "previous taper: steroid-dependent and frequently relapsing (read as if the phases ran at once, each order "
        "lasted only its first phase's 4 weeks, the relapses came 18 and 26 days after 'stopping', and SDNS was "
        "missed)",
    )
    s.body(0, 20, 115).labs(0, upcr=640, albumin=17, creatinine=30).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="recurrence")
    daily, alternate, low = per_m2(60, 115, 20, cap=60), per_m2(40, 115, 20, cap=40), per_m2(20, 115, 20, cap=40)
    taper = [(daily, 1, 4), (alternate, 2, 4), (low, 2, 2)]
    why = f" (60 mg/m2/day, BSA {bsa(115, 20):.2f} m2, then alternate days)"
    s.tapered("prednisolone", 0, taper, why)
    s.dipsticks(6, ["1+", "trace", "negative", "negative", "negative"])
    s.labs(14, upcr=12, albumin=33)
    for relapse in (45, 101):  # days 28-55 of the first taper; days 76-103 of the second (from day 48)
        s.dipsticks(relapse - 1, ["trace", "3+", "3+", "3+"])
        s.labs(relapse + 2, upcr=380, albumin=24)
        s.tapered("prednisolone", relapse + 3, taper, why)
        s.dipsticks(relapse + 9, ["1+", "trace", "negative", "negative", "negative"])
        s.labs(relapse + 20, upcr=11, albumin=34)
    s.labs(190, upcr=9, albumin=40, creatinine=31)
    return s


def dose_range(pid: str = "range-omar") -> Story:
    """A dose written as a range that straddles the adequate dose: adequacy, and so resistance, cannot be shown."""
    s = Story(
        "dose-range",
        pid,
        born="2017-06-02",
        gender="male",
        given="Omar",
        family="Haddad",
        onset="2023-09-11",
        as_of_day=45,
        classifications=["insufficient-data"],
        note="6-year-old boy (20 kg, 115 cm; standard 48 mg/day); prednisolone ordered as 30-60 mg once daily for "
        "6 weeks and still nephrotic at week 4: at the low end the trial is under-dosed, at the high end it is "
        "adequate, so steroid response cannot be judged (the midpoint, 45 mg/day, once made it an adequate trial "
        "and the boy steroid-resistant)",
    )
    s.body(0, 20, 115).labs(0, upcr=720, albumin=15, creatinine=28).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    s.ordered_range("prednisolone", 0, 41, 30, 60, "prednisolone 30-60 mg orally once daily (1.5-3 mg/kg)")
    s.labs(14, upcr=510, albumin=18).labs(28, upcr=430, albumin=19)
    return s


def srns_initial(pid: str = "srns-oliver", monogenic: bool = False) -> Story:
    name = "srns-monogenic" if monogenic else "srns-initial"
    s = Story(
        name,
        pid,
        born="2020-02-14" if monogenic else "2019-08-25",
        gender="female" if monogenic else "male",
        given="Amelia" if monogenic else "Oliver",
        family="Haddad" if monogenic else "Brennan",
        onset="2023-10-02" if monogenic else "2023-05-15",
        as_of_day=50 if monogenic else 42,
        classifications=["srns-initial"],
        findings=["monogenic-disease"] if monogenic else [],
        note=(
            "3-year-old girl with SRNS (UPCR 380 mg/mmol at week 4 on full-dose prednisolone); gene panel "
            "on day 45: homozygous pathogenic NPHS2 variant"
            if monogenic
            else "3-year-old boy; prednisolone 40 mg/day (60 mg/m2/day); still nephrotic at day 28 (UPCR 410 "
            "mg/mmol, albumin 16 g/L): steroid-resistant; lisinopril from day 29, biopsy minimal change"
        ),
    )
    s.body(0, 15.5 if monogenic else 16.5, 98 if monogenic else 101)
    s.labs(0, upcr=760 if monogenic else 720, albumin=13, creatinine=24).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.ordered("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    for n, upcr, albumin in ((7, 690, 14), (14, 540, 15), (21, 480, 15), (28, 380 if monogenic else 410, 16)):
        s.labs(n, upcr=upcr, albumin=albumin)
    s.creatinine(28, 25)
    s.ordered("lisinopril", 29, None, 2.5, why=" (supportive: antiproteinuric)")
    s.condition("MCD", 33, note="Kidney biopsy: minimal change disease")
    s.labs(35, upcr=430, albumin=17).labs(42, upcr=400, albumin=18)
    if monogenic:
        s.genetic(45, pathogenic=True, dna="NM_014625.4:c.413G>A", protein="p.(Arg138Gln)")
        s.labs(49, upcr=410, albumin=18)
    return s


def srns_secondary(pid: str = "srns2-ava") -> Story:
    s = Story(
        "srns-secondary",
        pid,
        born="2016-06-30",
        gender="female",
        given="Ava",
        family="Okafor",
        onset="2022-09-05",
        as_of_day=240,
        upcr="mg/mg",
        albumin="g/dL",
        creatinine="mg/dL",
        classifications=["ssns", "infrequent-relapse", "srns-secondary"],
        note="6-year-old girl; steroid-sensitive first episode (remission on day 10); relapse on day 200 "
        "treated with prednisolone 55 mg/day from day 201, still nephrotic at day 28 of that course "
        "(UPCR 2.9 mg/mg): secondary (late) steroid resistance after 1 relapse",
    )
    s.body(0, 22, 118).labs(0, upcr=7.4, albumin=1.8, creatinine=0.35).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    initial_course(s, as_request=True)
    s.labs(10, upcr=0.15, albumin=3.0).labs(42, upcr=0.1, albumin=3.9).labs(84, upcr=0.09, albumin=4.2)
    s.body(200, 23, 120).labs(200, upcr=5.6, albumin=2.2, creatinine=0.36).dipstick(200, "4+")
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.taking("prednisolone", 201, None, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    for n, upcr, albumin in ((208, 4.9, 2.3), (215, 3.8, 2.4), (222, 3.1, 2.4), (229, 2.9, 2.5)):
        s.labs(n, upcr=upcr, albumin=albumin)
    s.ordered("enalapril", 230, None, 5, why=" (supportive: antiproteinuric)")
    s.labs(236, upcr=3.0, albumin=2.5, creatinine=0.37)
    return s


def _srns_then_cni(
    s: Story,
    upcr_course: list[tuple[int, float, float]],
    cni: str = "cyclosporine",
    cni_stop: int | None = None,
    medication: bool = False,
) -> float:
    """Day 0-41 full-dose prednisolone (nephrotic at day 28), ACE inhibitor, biopsy, then a CNI from day 42.

    Returns the CNI dose per administration (twice daily)."""
    s.condition("childhood NS", 0)
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.taking("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    s.labs(14, upcr=700, albumin=13).labs(28, upcr=620, albumin=14, creatinine=s_creatinine(s))
    s.ordered("lisinopril", 30, None, 2.5, why=" (supportive: antiproteinuric)")
    s.body(40, s.weight + 1, s.height)
    half = per_m2(30, s.height, s.weight, cap=40)
    s.taking("prednisolone", 42, 71, half, why=" (30 mg/m2/day with the calcineurin inhibitor, 1 month)")
    s.taking("prednisolone", 72, 225, half, every_days=2, why=" (30 mg/m2 on alternate days, 5 months planned)")
    if cni == "cyclosporine":
        dose = per_m2(85, s.height, s.weight, step=5)  # x 2 a day: ~170 mg/m2/day
        why = f" ({2 * dose:g} mg/day = {2 * dose / bsa(s.height, s.weight):.0f} mg/m2/day in 2 doses)"
    else:
        dose = round(0.05 * s.weight, 1)  # x 2 a day: 0.1 mg/kg/day
        why = f" ({2 * dose:g} mg/day = 0.1 mg/kg/day in 2 doses)"
    product = s.medication(cni, "Ciclosporin 100 mg/mL oral solution", "oral solution") if medication else None
    s.ordered(cni, 42, cni_stop, dose, per_day=2, why=why, medication=product)
    for n, upcr, albumin in upcr_course:
        s.labs(n, upcr=upcr, albumin=albumin)
    return dose


def s_creatinine(s: Story) -> float:
    return 30 if s.units["creatinine"] == "umol/L" else 0.34


def cni_resistant(pid: str = "cnir-ethan") -> Story:
    s = Story(
        "cni-resistant",
        pid,
        born="2015-04-18",
        gender="male",
        given="Ethan",
        family="Walsh",
        onset="2022-03-07",
        as_of_day=235,
        classifications=["srns-initial", "cni-resistant"],
        note="6-year-old boy; SRNS at day 28 (UPCR 620 mg/mmol); biopsy FSGS; cyclosporine 150 mg/day "
        "(167 mg/m2/day, troughs 92-110 ng/mL) from day 42 with lisinopril; still nephrotic after "
        "6 months (UPCR 400 mg/mmol on day 224): CNI-resistant",
    )
    s.body(0, 23, 121).labs(0, upcr=950, albumin=12, creatinine=30).dipstick(0, "4+")
    s.condition("FSGS", 35, note="Kidney biopsy: focal segmental glomerulosclerosis, not otherwise specified")
    _srns_then_cni(
        s,
        [(56, 540, 16), (84, 480, 18), (112, 430, 19), (140, 390, 19), (168, 410, 20), (196, 380, 20), (224, 400, 20)],
        medication=True,
    )
    for n, trough in ((49, 95), (70, 110), (100, 105), (140, 92), (180, 100), (220, 98)):
        s.level("cyclosporine", n, trough)
    s.body(120, 24.5, 123).creatinine(84, 31).creatinine(168, 32).body(220, 25, 124).creatinine(224, 32)
    return s


def mdr_srns(pid: str = "mdr-chloe") -> Story:
    s = Story(
        "mdr-srns",
        pid,
        born="2014-10-09",
        gender="female",
        given="Chloe",
        family="Bianchi",
        onset="2021-06-14",
        as_of_day=420,
        classifications=["srns-initial", "cni-resistant", "mdr-srns"],
        note="6-year-old girl; SRNS at day 28; NPHS2 negative; FSGS; cyclosporine (164 mg/m2/day) from day 42, "
        "no response at 6 months; mycophenolate mofetil 1000 mg/day (1145 mg/m2/day) from day 245; "
        "still nephrotic 12 months after the first steroid-sparing agent: multidrug-resistant",
    )
    s.body(0, 21, 119).labs(0, upcr=880, albumin=13, creatinine=29).dipstick(0, "4+")
    s.condition("FSGS", 36, note="Kidney biopsy: focal segmental glomerulosclerosis (tip lesion absent)")
    _srns_then_cni(
        s,
        [
            (56, 590, 15),
            (84, 520, 17),
            (112, 470, 18),
            (140, 450, 18),
            (168, 430, 19),
            (196, 460, 18),
            (224, 440, 19),
            (252, 420, 20),
        ],
        cni_stop=258,
    )
    s.genetic(70, pathogenic=False)
    for n, trough in ((49, 88), (77, 104), (112, 96), (168, 112), (210, 101), (245, 93)):
        s.level("cyclosporine", n, trough)
    s.body(150, 22, 121).creatinine(150, 30).body(240, 22.5, 122).creatinine(240, 31)
    mmf = per_m2(1200 / 2, s.height, s.weight, step=250)
    s.taking(
        "mycophenolate mofetil",
        245,
        None,
        mmf,
        per_day=2,
        why=f" ({2 * mmf:g} mg/day = {2 * mmf / bsa(s.height, s.weight):.0f} mg/m2/day in 2 doses)",
    )
    for n, upcr, albumin in (
        (280, 400, 20),
        (308, 420, 19),
        (336, 390, 20),
        (364, 410, 19),
        (392, 380, 21),
        (406, 395, 20),
        (418, 400, 20),
    ):
        s.labs(n, upcr=upcr, albumin=albumin)
    s.body(330, 23, 123).creatinine(330, 31).creatinine(406, 32)
    return s


def cni_nephrotoxicity(pid: str = "cnitox-leo") -> Story:
    s = Story(
        "cni-nephrotoxicity",
        pid,
        born="2016-01-22",
        gender="male",
        given="Leo",
        family="Fischer",
        onset="2022-10-03",
        as_of_day=130,
        classifications=["srns-initial", "cni-responsive"],
        findings=["cni-nephrotoxicity"],
        note="6-year-old boy; SRNS at day 28; cyclosporine 166 mg/m2/day from day 42, partial remission on "
        "day 70 and complete on day 84; creatinine 34 umol/L before cyclosporine, 47 on day 98 and 49 "
        "on day 126 (+38 %, +44 %, not falling): cyclosporine nephrotoxicity",
    )
    s.body(0, 21, 117).labs(0, upcr=690, albumin=14, creatinine=32).dipstick(0, "4+")
    s.condition("MCD", 34, note="Kidney biopsy: minimal change disease")
    _srns_then_cni(s, [(56, 180, 27), (70, 60, 31), (84, 15, 34), (98, 12, 37), (112, 10, 38), (126, 11, 39)])
    s.creatinine(40, 34)
    for n, trough in ((49, 100), (70, 115), (98, 118), (126, 112)):
        s.level("cyclosporine", n, trough)
    s.creatinine(70, 38).creatinine(98, 47).body(112, 22.5, 118).creatinine(126, 49)
    return s


def tacrolimus_level(pid: str = "tac-henry") -> Story:
    s = Story(
        "cni-level-out-of-range",
        pid,
        born="2017-07-19",
        gender="male",
        given="Henry",
        family="Dubois",
        onset="2023-03-20",
        as_of_day=90,
        classifications=["srns-initial", "cni-responsive"],
        findings=["cni-level-out-of-range"],
        note="5-year-old boy; SRNS at day 28; tacrolimus 0.1 mg/kg/day from day 42, partial remission on day "
        "70; trough 12.8 and 13.5 ng/mL on days 63 and 77 (target 5-10 ng/mL)",
    )
    s.body(0, 19, 111).labs(0, upcr=640, albumin=15, creatinine=27).dipstick(0, "4+")
    _srns_then_cni(s, [(56, 150, 26), (70, 85, 31), (84, 35, 33)], cni="tacrolimus")
    s.creatinine(40, 27)
    for n, trough in ((49, 6.5), (63, 12.8), (77, 13.5), (84, 8.9)):
        s.level("tacrolimus", n, trough)
    s.creatinine(63, 29).creatinine(84, 28)
    return s


def under_dosed(pid: str = "underdose-isla") -> Story:
    s = Story(
        "under-dosed-trial",
        pid,
        born="2019-12-01",
        gender="female",
        given="Isla",
        family="Kowalski",
        onset="2023-06-05",
        as_of_day=35,
        classifications=["insufficient-data"],
        findings=["inadequate-steroid-trial"],
        note="3-year-old girl; prednisolone ordered as 10 mg twice daily (20 mg/day = 31 mg/m2/day, ~52 % of "
        "the standard 60 mg/m2/day); still nephrotic at day 28: the trial is inadequate, so steroid "
        "resistance cannot be concluded",
    )
    s.body(0, 15, 98).labs(0, upcr=560, albumin=17, creatinine=23).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    s.ordered(
        "prednisolone",
        0,
        None,
        10,
        per_day=2,
        why=" (20 mg/day = 31 mg/m2/day: the referring ward halved the dose by mistake)",
    )
    s.labs(14, upcr=420, albumin=18).labs(28, upcr=330, albumin=19, creatinine=24)
    return s


def insufficient(pid: str = "nodata-jack") -> Story:
    s = Story(
        "insufficient-data",
        pid,
        born="2018-07-07",
        gender="male",
        given="Jack",
        family="Murphy",
        onset="2023-08-07",
        as_of_day=50,
        classifications=["insufficient-data"],
        note="5-year-old boy on full-dose prednisolone; UPCR on days 0 and 7 (still nephrotic), family abroad, "
        "next value on day 44 (in remission): no proteinuria value between day 21 and day 35",
    )
    s.body(0, 19, 110).labs(0, upcr=480, albumin=17, creatinine=26).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)
    s.labs(7, upcr=310, albumin=20).labs(44, upcr=9, albumin=36)
    return s


def adult_fsgs(pid: str = "adult-daniel") -> Story:
    s = Story(
        "adult-fsgs-srns",
        pid,
        born="1977-11-20",
        gender="male",
        given="Daniel",
        family="Carter",
        onset="2023-03-06",
        as_of_day=135,
        tz="-05:00",
        upcr="mg/g",
        albumin="g/dL",
        creatinine="mg/dL",
        classifications=["srns-initial"],
        note="45-year-old man; 24-h protein 8.4 g/day, albumin 2.3 g/dL; biopsy FSGS; prednisone 80 mg/day "
        "(1 mg/kg, max 80) from day 12 for 16 weeks with losartan; 24-h protein 5.6 g/day at week 16 "
        "(33 % fall, no partial remission): steroid-resistant FSGS",
    )
    s.body(0, 84, 178).protein_24h(0, 8.4).labs(0, upcr=6300, albumin=2.3, creatinine=1.05)
    s.condition("NS", 0)
    s.condition(
        "FSGS",
        9,
        category="problem-list-item",
        note="Kidney biopsy day 9: FSGS, 4 of 22 glomeruli with segmental sclerosis",
    )
    s.ordered("losartan", 0, None, 50, why=" (antiproteinuric)")
    s.taking("prednisone", 12, 130, 80, why=" (1 mg/kg/day, max 80 mg)")
    for n, grams, albumin, creatinine in (
        (40, 7.1, 2.4, 1.08),
        (68, 6.2, 2.5, 1.1),
        (96, 5.9, 2.5, 1.07),
        (124, 5.6, 2.6, 1.09),
    ):
        s.protein_24h(n, grams).labs(n, albumin=albumin, creatinine=creatinine)
    s.labs(124, upcr=4100).body(124, 86, 178)
    return s


def steroid_intolerant(pid: str = "adult-margaret") -> Story:
    s = Story(
        "steroid-intolerant",
        pid,
        born="1967-05-03",
        gender="female",
        given="Margaret",
        family="Jansen",
        onset="2023-09-04",
        as_of_day=60,
        albumin="g/dL",
        creatinine="mg/dL",
        classifications=["steroid-intolerant", "ssns"],
        findings=["steroid-intolerance"],
        note="56-year-old woman with minimal change disease and an active peptic ulcer (diagnosed 3 weeks "
        "before onset); prednisone 70 mg/day given anyway, complete remission on day 37",
    )
    s.body(0, 68, 165).protein_24h(0, 6.5).labs(0, albumin=2.1, creatinine=0.85)
    s.condition("peptic ulcer", -21, category="problem-list-item", note="Gastroscopy: active duodenal ulcer")
    s.condition("NS", 0, status="remission")
    s.condition("MCD", 7, note="Kidney biopsy: minimal change disease")
    s.taking("prednisone", 9, None, 70, why=" (1 mg/kg/day)")
    s.protein_24h(23, 2.1).labs(23, albumin=2.9, creatinine=0.86)
    s.protein_24h(37, 0.2).labs(37, albumin=3.7, creatinine=0.84)
    return s


def congenital(pid: str = "congenital-aino") -> Story:
    s = Story(
        "congenital-ns",
        pid,
        born="2023-01-10",
        gender="female",
        given="Aino",
        family="Virtanen",
        onset="2023-02-20",
        as_of_day=30,
        classifications=["congenital-ns"],
        note="Girl nephrotic at 41 days of age (UPCR 900 mg/mmol, albumin 9 g/L): congenital nephrotic syndrome; "
        "no steroid-response category, genetic testing and referral proposed, no immunosuppression",
    )
    s.body(0, 4.1, 54).labs(0, upcr=900, albumin=9, creatinine=28)
    s.condition("NS", 0, note="Generalised oedema from the first weeks of life.")
    s.labs(14, upcr=950, albumin=10).labs(28, upcr=880, albumin=11, creatinine=30)
    return s


def infantile(pid: str = "infantile-ruben") -> Story:
    s = Story(
        "infantile-ns",
        pid,
        born="2022-11-15",
        gender="male",
        given="Ruben",
        family="Costa",
        onset="2023-07-17",
        as_of_day=60,
        classifications=["infantile-ns", "ssns"],
        note="Boy nephrotic at 8 months of age (UPCR 640 mg/mmol, albumin 15 g/L): infantile nephrotic syndrome; "
        "prednisolone 60 mg/m2/day, complete remission on day 12: steroid-sensitive; genetic testing first",
    )
    s.body(0, 8.5, 70).labs(0, upcr=640, albumin=15, creatinine=20).dipstick(0, "4+")
    s.condition("NS", 0, status="remission")
    initial_course(s)
    s.labs(12, upcr=16, albumin=27).labs(42, upcr=9, albumin=36)
    return s


def secondary_lupus(pid: str = "lupus-sara") -> Story:
    s = Story(
        "secondary-ns-suspected",
        pid,
        born="2009-06-02",
        gender="female",
        given="Sara",
        family="Okafor",
        onset="2023-04-03",
        as_of_day=60,
        classifications=["secondary-ns-suspected", "ssns"],
        note="13-year-old girl with lupus nephritis on record from day 10 (kidney biopsy); prednisolone 60 mg/day, "
        "complete remission on day 21: steroid-sensitive, but assuming primary disease; treat the cause",
    )
    s.body(0, 45, 155).labs(0, upcr=560, albumin=19, creatinine=52).dipstick(0, "4+")
    s.condition("NS", 0, status="remission")
    s.condition("lupus nephritis", 10, note="Kidney biopsy: lupus nephritis class V")
    initial_course(s)
    s.labs(14, upcr=90, albumin=27).labs(21, upcr=15, albumin=33).labs(49, upcr=10, albumin=38)
    return s


def cni_intolerant(pid: str = "cnii-noor") -> Story:
    s = Story(
        "cni-intolerant",
        pid,
        born="2016-03-11",
        gender="female",
        given="Noor",
        family="Bakker",
        onset="2022-11-07",
        as_of_day=150,
        classifications=["srns-initial", "cni-responsive", "cni-intolerant"],
        findings=["cni-nephrotoxicity"],
        note="6-year-old girl; SRNS at day 28; cyclosporine from day 42 with partial then complete remission; "
        "creatinine 35 umol/L before it, 48 on day 98 and 50 on day 112; cyclosporine stopped on day 120 for "
        "nephrotoxicity (status reason: suspected intolerance): CNI-intolerant, multidrug option proposed",
    )
    s.body(0, 21, 117).labs(0, upcr=680, albumin=14, creatinine=33).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.taking("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    s.labs(14, upcr=700, albumin=13).labs(28, upcr=620, albumin=14, creatinine=34)
    s.ordered("lisinopril", 30, None, 2.5, why=" (supportive: antiproteinuric)")
    s.creatinine(40, 35)
    dose = per_m2(85, s.height, s.weight, step=5)
    why = f" ({2 * dose:g} mg/day = {2 * dose / bsa(s.height, s.weight):.0f} mg/m2/day in 2 doses)"
    s.stopped("cyclosporine", 42, 120, dose, "Stopped for nephrotoxicity (creatinine rising)", per_day=2, why=why)
    for n, upcr, albumin in ((56, 170, 27), (70, 60, 31), (84, 15, 34), (112, 12, 37), (140, 14, 36)):
        s.labs(n, upcr=upcr, albumin=albumin)
    for n, trough in ((49, 100), (70, 110), (98, 115)):
        s.level("cyclosporine", n, trough)
    s.creatinine(70, 38).creatinine(98, 48).creatinine(112, 50).creatinine(140, 41)
    return s


def relapsing_on_cni(pid: str = "rcni-kenji") -> Story:
    s = Story(
        "relapsing-on-cni",
        pid,
        born="2017-02-08",
        gender="male",
        given="Kenji",
        family="Sato",
        onset="2022-09-05",
        as_of_day=420,
        classifications=["ssns", "infrequent-relapse", "relapsing-on-cni"],
        note="5-year-old boy; steroid-sensitive; cyclosporine from day 90 (in remission, steroid-sparing); "
        "relapses on days 200 and 330, each on cyclosporine for more than 3 months: relapsing on a calcineurin "
        "inhibitor, the multidrug option (tacrolimus, mizoribine, prednisolone) is proposed",
    )
    s.body(0, 19, 110).labs(0, upcr=610, albumin=16, creatinine=27).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="relapse")
    initial_course(s)
    s.labs(10, upcr=12, albumin=29).labs(42, upcr=9, albumin=37).labs(84, upcr=8, albumin=40)
    dose = per_m2(75, s.height, s.weight, step=5)
    s.taking("cyclosporine", 90, None, dose, per_day=2, why=f" ({2 * dose:g} mg/day in 2 doses)")
    for first, remission in ((200, 210), (330, 340)):
        s.dipsticks(first, ["3+", "3+", "3+"])
        s.labs(first + 2, upcr=380, albumin=26)
        relapse_course(s, first + 3, remission)
        s.labs(remission, upcr=14, albumin=33)
    s.labs(400, upcr=9, albumin=39)
    return s


def thromboembolism(pid: str = "rvt-milan") -> Story:
    s = Story(
        "thromboembolism",
        pid,
        born="2018-11-23",
        gender="male",
        given="Milan",
        family="Novak",
        onset="2023-06-12",
        as_of_day=60,
        classifications=["ssns"],
        findings=["thromboembolism"],
        note="4-year-old boy; steroid-sensitive; renal vein thrombosis on day 6 (haematuria, Doppler) while "
        "nephrotic: venous thromboembolism",
    )
    s.body(0, 17, 103).labs(0, upcr=720, albumin=12, creatinine=30).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    s.condition("renal vein thrombosis", 6, note="Doppler ultrasound: left renal vein thrombosis")
    initial_course(s)
    s.labs(12, upcr=14, albumin=27).labs(42, upcr=8, albumin=38)
    return s


def serious_infection(pid: str = "inf-lina") -> Story:
    s = Story(
        "serious-infection",
        pid,
        born="2019-04-30",
        gender="female",
        given="Lina",
        family="Haddad",
        onset="2023-08-07",
        as_of_day=42,
        classifications=["srns-initial"],
        findings=["serious-infection"],
        note="4-year-old girl (16 kg) on full-dose prednisolone 40 mg/day (2.5 mg/kg/day); pneumonia from day 16; still nephrotic "
        "at day 28: steroid-resistant, but possibly pseudo-refractory (active infection)",
    )
    s.body(0, 16, 100).labs(0, upcr=700, albumin=13, creatinine=24).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.taking("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    s.condition("pneumonia", 16, note="Right lower lobe pneumonia, admitted for IV antibiotics")
    for n, upcr, albumin in ((7, 650, 14), (14, 560, 15), (21, 500, 15), (28, 420, 16), (35, 400, 17)):
        s.labs(n, upcr=upcr, albumin=albumin)
    return s


def hypertension_on_cyclosporine(pid: str = "htn-amira") -> Story:
    s = Story(
        "hypertension-on-cyclosporine",
        pid,
        born="2014-11-03",
        gender="female",
        given="Amira",
        family="Haddad",
        onset="2023-02-06",
        as_of_day=130,
        classifications=["srns-initial", "cni-responsive"],
        findings=["hypertension"],
        note="8-year-old girl; SRNS at day 28; cyclosporine ~170 mg/m2/day from day 42, complete remission on "
        "day 84; blood pressure 104/62 before cyclosporine, then 142/92 on day 70 (panel) and 144/94 on day 91 "
        "(separate systolic and diastolic Observations): at or above her stage 2 limit, the 95th percentile + 12 "
        "for age, sex and height (AAP 2017 Table 5: 124/86 at 128 cm, 125/86 at 129 cm), on 2 days within 30: "
        "moderate, cyclosporine implicated",
    )
    s.body(0, 26, 128).labs(0, upcr=650, albumin=15, creatinine=34).dipstick(0, "4+").blood_pressure(0, 104, 62)
    _srns_then_cni(s, [(56, 170, 26), (70, 70, 31), (84, 15, 35), (112, 12, 38), (126, 10, 39)])
    s.creatinine(40, 34)
    for n, trough in ((49, 95), (70, 110), (98, 115), (126, 105)):
        s.level("cyclosporine", n, trough)
    s.blood_pressure(56, 110, 66).blood_pressure(70, 142, 92).blood_pressure(91, 144, 94, panel=False)
    s.creatinine(70, 36).creatinine(98, 37).body(112, 27, 129).creatinine(126, 36)
    return s


def hypertension_by_percentile(pid: str = "htn-theo") -> Story:
    s = Story(
        "hypertension-by-percentile",
        pid,
        born="2017-09-20",
        gender="male",
        given="Theo",
        family="Moreau",
        onset="2023-03-13",
        as_of_day=100,
        classifications=["ssns"],
        findings=["hypertension"],
        note="5-year-old boy with SSNS, 110 cm; on prednisolone, blood pressure 110/62 on day 14, 111/60 on day 35 "
        "and 110/66 on day 56: below 130/80 but at or above the 95th percentile for his age, sex and height "
        "(AAP 2017 Table 4: 109/68 at 110 cm, the 25th height column; 109/69 at 111 cm, measured on day 56, the "
        "50th) on 3 days within 90: stage 1 hypertension, low, prednisolone implicated; 102/60 before "
        "treatment and 100/58 after the course",
    )
    s.body(0, 19, 110).labs(0, upcr=690, albumin=15, creatinine=27).dipstick(0, "4+").blood_pressure(0, 102, 60)
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)
    s.labs(10, upcr=14, albumin=30).labs(28, upcr=9, albumin=37).labs(70, upcr=7, albumin=40)
    s.blood_pressure(14, 110, 62).blood_pressure(35, 111, 60).blood_pressure(56, 110, 66)
    s.body(56, 19.5, 111).blood_pressure(95, 100, 58)
    return s


def acute_kidney_injury(pid: str = "aki-noah") -> Story:
    s = Story(
        "acute-kidney-injury",
        pid,
        born="2016-04-18",
        gender="male",
        given="Noah",
        family="Kowalski",
        onset="2023-05-08",
        as_of_day=130,
        classifications=["srns-initial", "cni-responsive"],
        findings=["acute-kidney-injury"],
        note="7-year-old boy; SRNS at day 28; tacrolimus 0.1 mg/kg/day from day 42, partial remission on day 70; "
        "creatinine 31 umol/L on day 98, 68 on day 101 (2.2 x the lowest value of the previous 7 days: KDIGO "
        "stage 2, high, tacrolimus implicated), back to 33 on day 112",
    )
    s.body(0, 22, 120).labs(0, upcr=610, albumin=16, creatinine=29).dipstick(0, "4+")
    _srns_then_cni(s, [(56, 160, 27), (70, 90, 31), (84, 40, 33), (112, 30, 34), (126, 25, 35)], cni="tacrolimus")
    s.creatinine(40, 29)
    for n, trough in ((49, 6.2), (63, 7.5), (84, 8.1), (101, 9.4), (126, 7.0)):
        s.level("tacrolimus", n, trough)
    s.creatinine(63, 30).creatinine(84, 30).creatinine(98, 31).creatinine(101, 68).creatinine(104, 45)
    s.creatinine(112, 33).creatinine(126, 32)
    return s


def steroid_hyperglycaemia(pid: str = "glu-hugo") -> Story:
    s = Story(
        "steroid-hyperglycaemia",
        pid,
        born="2012-06-30",
        gender="male",
        given="Hugo",
        family="Laurent",
        onset="2023-03-13",
        as_of_day=100,
        classifications=["ssns"],
        findings=["drug-induced-hyperglycaemia"],
        note="10-year-old boy with SSNS; prednisolone 60 mg/day (60 mg/m2/day, capped); fasting glucose 133 mg/dL "
        "on day 14 (at or above 126 mg/dL) and HbA1c 6.6 % on day 40, both on prednisolone: steroid-induced "
        "hyperglycaemia, moderate; 92 mg/dL on day 90 after the course",
    )
    s.body(0, 42, 150).labs(0, upcr=720, albumin=14, creatinine=38).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)
    s.labs(10, upcr=15, albumin=29).labs(28, upcr=8, albumin=38).labs(70, upcr=6, albumin=41)
    for n, kind, value in (
        (0, "glucose-fasting", 88),
        (14, "glucose-fasting", 133),
        (40, "hba1c", 6.6),
        (90, "glucose-fasting", 92),
    ):
        s.observation(kind, n, value, "07:30")
    return s


def multidrug_mizoribine(pid: str = "multi-kenji") -> Story:
    """Seed 004's regimen after CNI resistance: tacrolimus + mizoribine + prednisolone, with plasma exchange."""
    s = Story(
        "multidrug-mizoribine",
        pid,
        born="2014-08-21",
        gender="male",
        given="Kenji",
        family="Sato",
        onset="2022-01-17",
        as_of_day=400,
        classifications=["srns-initial", "cni-resistant"],
        note="7-year-old boy; SRNS at day 28; FSGS; cyclosporine (~170 mg/m2/day) from day 42, still nephrotic "
        "after 6 months: CNI-resistant; plasma exchange x5 (days 232-240, recorded by name only); then "
        "tacrolimus 0.1 mg/kg/day + mizoribine 150 mg/day (named only: no code exists) + prednisolone from "
        "day 240 [D 004]; complete remission on day 330",
    )
    s.body(0, 24, 124).labs(0, upcr=900, albumin=13, creatinine=31).dipstick(0, "4+")
    s.condition("FSGS", 35, note="Kidney biopsy: focal segmental glomerulosclerosis")
    _srns_then_cni(
        s,
        [(56, 560, 16), (84, 500, 17), (112, 470, 18), (140, 430, 18), (168, 440, 19), (196, 410, 19), (224, 420, 19)],
        cni_stop=231,
    )
    for n, trough in ((49, 96), (90, 104), (140, 99), (200, 101)):
        s.level("cyclosporine", n, trough)
    s.creatinine(84, 32).creatinine(168, 33).body(230, 26, 127).creatinine(230, 33)
    s.procedure("Therapeutic plasma exchange (TPE)", 232, 240, why="5 sessions, 1.5 plasma volumes, albumin")
    tac = round(0.05 * s.weight, 1)
    s.ordered("tacrolimus", 240, None, tac, per_day=2, why=f" ({2 * tac:g} mg/day = 0.1 mg/kg/day in 2 doses)")
    s.taking(
        "mizoribine",
        240,
        None,
        150,
        why=" (multidrug therapy with tacrolimus and prednisolone)",
        text="Mizoribine (Bredinin) 50 mg tablet",
    )
    s.taking("prednisolone", 240, None, 20, every_days=2, why=" (alternate days, with tacrolimus and mizoribine)")
    for n, trough in ((250, 6.2), (280, 7.4), (320, 6.8)):
        s.level("tacrolimus", n, trough)
    s.labs(270, upcr=260, albumin=24).labs(300, upcr=120, albumin=30).labs(330, upcr=15, albumin=36)
    s.labs(380, upcr=12, albumin=39, creatinine=32)
    return s


def mycophenolate_sodium(pid: str = "mpa-ines") -> Story:
    """Mycophenolate sodium at a full dose: judged as mycophenolate mofetil after conversion, so no low-dose alarm."""
    s = Story(
        "mycophenolate-sodium",
        pid,
        born="2015-02-03",
        gender="female",
        given="Ines",
        family="Carvalho",
        onset="2023-01-16",
        as_of_day=200,
        classifications=["ssns"],
        note="7-year-old girl, complete remission on day 10; mycophenolate sodium 360 mg twice daily (720 mg/day = "
        "774 mg/m2/day, 1075 mg/m2/day as mycophenolate mofetil; read as mofetil it looked low) from day 90 as a steroid-sparing agent, coded "
        "only by ATC L04AA06 with the hospital's product name: not a low dose once converted",
    )
    s.body(0, 24, 126).labs(0, upcr=700, albumin=15, creatinine=30).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="remission")
    initial_course(s)
    s.labs(10, upcr=12, albumin=30).labs(42, upcr=9, albumin=39).labs(84, upcr=8, albumin=41, creatinine=29)
    s.body(88, 24.5, 127)
    s.taking(
        "mycophenolic acid",
        90,
        None,
        360,
        per_day=2,
        why=" (steroid-sparing, about 1000 mg/m2/day as mycophenolate mofetil)",
        text="Mycophenolate sodium 360 mg gastro-resistant tablet",
    )
    s.labs(130, upcr=9, albumin=41).labs(190, upcr=8, albumin=42, creatinine=30)
    return s


STORIES: list[Callable[[], Story]] = [
    ssns,
    late_responder,
    frns,
    frns_ruleset_difference,
    sdns,
    srns_initial,
    srns_secondary,
    cni_resistant,
    mdr_srns,
    cni_nephrotoxicity,
    under_dosed,
    adult_fsgs,
    insufficient,
    steroid_intolerant,
    lambda: srns_initial("srns-amelia", monogenic=True),
    tacrolimus_level,
    lambda: sdns("sdns-cpa-mia", cyclophosphamide=True),
    taper_order,
    dose_range,
    congenital,
    infantile,
    secondary_lupus,
    cni_intolerant,
    relapsing_on_cni,
    thromboembolism,
    serious_infection,
    hypertension_on_cyclosporine,
    hypertension_by_percentile,
    acute_kidney_injury,
    steroid_hyperglycaemia,
    multidrug_mizoribine,
    mycophenolate_sodium,
]
URN_BUNDLES = {"late-responder"}  # every entry a urn:uuid fullUrl, references to the Patient by urn:uuid
# The cohort: five of the phenotypes again, as other patients, in one bulk export.
COHORT: list[tuple[Callable[[str], Story], str, str, str]] = [
    (ssns, "c-0001", "Hannah", "Berg"),
    (late_responder, "c-0002", "Mateo", "Garcia"),
    (frns, "c-0003", "Zoe", "Martin"),
    (cni_resistant, "c-0004", "Yusuf", "Demir"),
    (adult_fsgs, "c-0005", "Robert", "Evans"),
]
COHORT_TYPES = [
    "Patient",
    "Condition",
    "Observation",
    "Medication",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
]


# -- writing -------------------------------------------------------------------------------------------
def _urn(story: Story, resource: dict[str, Any]) -> str:
    name = f"{story.name}/{resource['resourceType']}/{resource['id']}"
    return f"urn:uuid:{uuid.uuid5(UUID_NAMESPACE, name)}"


def _rewrite_references(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite_references(v, mapping))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_references(v, mapping) for v in value]
    return value


def bundle(story: Story) -> dict[str, Any]:
    """A collection Bundle of the story's resources, with RESTful or urn:uuid fullUrls."""
    resources = story.resources()
    if story.name in URN_BUNDLES:
        full_urls = [_urn(story, r) for r in resources]
        mapping = {f"{r['resourceType']}/{r['id']}": url for r, url in zip(resources, full_urls, strict=True)}
        resources = [_rewrite_references(r, mapping) for r in resources]
    else:
        full_urls = [f"{BASE_URL}/{r['resourceType']}/{r['id']}" for r in resources]
    return {
        "resourceType": "Bundle",
        "id": f"sample-{story.name}",
        "meta": {"lastUpdated": f"{story.as_of.isoformat()}T18:00:00Z"},
        "type": "collection",
        "timestamp": f"{story.as_of.isoformat()}T18:00:00Z",
        "entry": [{"fullUrl": url, "resource": r} for url, r in zip(full_urls, resources, strict=True)],
    }


README_HEAD = """# Sample data

Synthetic, realistic FHIR R4 data for fhir-ns: one patient per Bundle, one phenotype per patient, and
the answer the classifier must give for each. Everything here is written by `build_samples.py`
(stdlib + orjson, deterministic); edit the stories there and re-run it, never the JSON by hand:

    python samples/build_samples.py

- `bundles/<name>.json`: a `collection` Bundle (Patient, Condition, Observation, MedicationStatement,
  MedicationRequest, MedicationAdministration, Medication, Procedure). Entries have RESTful fullUrls
  (`https://hospital.example.org/fhir/<type>/<id>`) and `Patient/<id>` references, except
  `late-responder.json`, whose entries all have `urn:uuid:` fullUrls and whose references (subject,
  medicationReference) are those urn:uuids. Every bundle validates with `fhir.resources` (R4B models).
- `expected.json`: per bundle `file`, `as_of` (the evaluation date), `ruleset` (null = chosen by age at
  onset), `classifications` (codes in the order of their since date), `findings` (codes), `note` (the
  story); `alternate` gives the answer under another named rule set.
- `cohort.ndjson/`: a bulk-export style directory, one NDJSON file per resource type, holding five
  patients (`c-0001` to `c-0005`) who repeat five of the phenotypes; `cohort-expected.json` gives their
  answers in the same shape, keyed by patient id. Each patient has their own `as_of`.

Give fhir-ns a bundle, `bundles/` or `cohort.ndjson/` as input, not `samples/` itself: the answer files
(`expected.json`, `cohort-expected.json`) are not FHIR and would be reported as unreadable.

Conventions: day 0 is the first nephrotic-range proteinuria (the Condition's onset is the same day);
prednisolone is dosed at 60 mg/m2/day (BSA by Mosteller from the weight and height recorded in the
same bundle, max 60 mg) for 6 weeks then 40 mg/m2 on alternate days, relapses at 60 mg/m2/day until
3 days after remission then 4 weeks on alternate days; alternate-day dosing is `frequency 1, period 2,
periodUnit d`. Observations carry a time and a zone offset; the rules use the day as recorded.
Resource ids are `<patient id>-<type>-<nnn>`. No warnings or errors are expected when reading any sample
(`multidrug-mizoribine.json` names mizoribine and the plasma exchange without codes, which fhir-ns reports
as information: matched by name).
"""


def _cell(items: list[str]) -> str:
    return ", ".join(f"`{x}`" for x in items) or "none"


def readme(stories: list[Story], cohort: list[Story]) -> str:
    lines = [
        README_HEAD,
        "## Bundles",
        "",
        "| file | story | expected classification(s) | findings | rule set | as_of |",
        "|---|---|---|---|---|---|",
    ]
    for story in stories:
        e = story.expected
        classes = _cell(e["classifications"])
        if "alternate" in e:
            classes += f"; under `{e['alternate']['ruleset']}`: {_cell(e['alternate']['classifications'])}"
        lines.append(
            f"| `bundles/{story.name}.json` | {e['note']} | {classes} | {_cell(e['findings'])} | "
            f"{e['ruleset'] or story.default_ruleset + ' (default)'} | {e['as_of']} |"
        )
    lines += [
        "",
        "## Cohort (`cohort.ndjson/`)",
        "",
        "| patient | phenotype | expected classification(s) | as_of |",
        "|---|---|---|---|",
    ]
    for story in cohort:
        lines.append(
            f"| `{story.pid}` | `{story.name}` | {_cell(story.expected['classifications'])} | "
            f"{story.expected['as_of']} |"
        )
    return "\n".join(lines) + "\n"


def _write_json(path: Path, data: Any) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def main() -> None:
    bundles = HERE / "bundles"
    shutil.rmtree(bundles, ignore_errors=True)
    bundles.mkdir()
    expected = []
    stories = [make() for make in STORIES]
    for story in stories:
        _write_json(bundles / f"{story.name}.json", bundle(story))
        expected.append({"file": f"bundles/{story.name}.json", **story.expected})
    _write_json(HERE / "expected.json", expected)

    cohort_dir = HERE / "cohort.ndjson"
    shutil.rmtree(cohort_dir, ignore_errors=True)
    cohort_dir.mkdir()
    by_type: dict[str, list[bytes]] = {t: [] for t in COHORT_TYPES}
    cohort_expected = {}
    cohort = []
    for make, pid, given, family in COHORT:
        story = make(pid)
        cohort.append(story)
        story.patient["name"] = [{"use": "official", "family": family, "given": [given]}]
        for resource in story.resources():
            by_type[resource["resourceType"]].append(orjson.dumps(resource))
        cohort_expected[story.pid] = {"file": "cohort.ndjson", **story.expected}
    for rtype, lines in by_type.items():
        (cohort_dir / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    _write_json(HERE / "cohort-expected.json", cohort_expected)
    (HERE / "README.md").write_text(readme(stories, cohort), encoding="utf-8")


if __name__ == "__main__":
    main()
