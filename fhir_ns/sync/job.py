"""The sync job: read what changed on a FHIR server, re-classify the patients it touches, write back.

Order of work for each patient: read everything (all pages), classify, write one transaction
(DetectedIssue + CarePlan + Provenance, conditional on identifiers), then commit the patient's state.
A patient whose reads fail is not written at all; a run stopped anywhere resumes from the state.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import orjson

from fhir_ns.errors import AuthError, CapabilityError, OutputError, ServerError, UnreachableError
from fhir_ns.fhir.extract import FactCollector
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.fhir.server.capabilities import PATIENT_PARAM, Capabilities
from fhir_ns.fhir.server.http import FhirClient
from fhir_ns.fhir.writer import Settings, device_entry, patient_entries
from fhir_ns.output import write_atomically
from fhir_ns.pipeline import Config
from fhir_ns.rules import PatientResult, evaluate
from fhir_ns.sync.state import State, Written

log = logging.getLogger("fhir_ns.sync")
PAGE_SIZE = "200"
WITHDRAWN = ("cancelled", "revoked", "entered-in-error")


class Sink(Protocol):
    """Where a patient's transaction goes: the server, a directory, or nowhere (dry run)."""

    name: str

    def write(self, patient_id: str, bundle: dict[str, Any]) -> None: ...


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def done(self, patient_id: str, outcome: str, detail: str) -> None: ...


@dataclass(slots=True)
class SyncOptions:
    as_of: date
    ruleset_id: str | None = None
    dry_run: bool = False
    since: str | None = None
    patients: tuple[str, ...] = ()


@dataclass(slots=True)
class Summary:
    cohort: int = 0
    candidates: int = 0
    read: int = 0
    unchanged: int = 0
    written: int = 0
    withdrawn: int = 0
    would_write: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    incremental: bool = False
    watermark: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(slots=True)
class SyncJob:
    client: FhirClient
    state: State
    config: Config
    sink: Sink
    options: SyncOptions
    progress: Progress
    settings: Settings = field(default_factory=Settings)
    summary: Summary = field(default_factory=Summary)
    _caps: Capabilities | None = None

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> Summary:
        started = time.perf_counter()
        try:
            return self._run()
        finally:
            self.summary.seconds = time.perf_counter() - started

    def _run(self) -> Summary:
        caps = self.check_capabilities()
        cohort, server_time = self.cohort(caps)
        self.summary.cohort = len(cohort)
        candidates = self.candidates(caps, cohort)
        self.summary.candidates = len(candidates)
        self.progress.start(len(candidates))
        for pid in candidates:
            self.sync_patient(pid)
        if not self.options.dry_run:
            self.state.set_meta("retry", orjson.dumps(sorted(self.summary.failed)).decode())
            if server_time:
                self.state.set_meta("watermark", server_time)
                self.summary.watermark = server_time
        return self.summary

    def check_capabilities(self) -> Capabilities:
        caps = Capabilities.from_statement(self.client.capabilities())
        if caps.fhir_version and not caps.fhir_version.startswith("4."):
            raise CapabilityError(f"the server speaks FHIR {caps.fhir_version}; fhir-ns sync needs R4 (4.0.x/4.3.x)")
        fatal, skipped = caps.read_problems()
        if fatal:
            raise CapabilityError("the server cannot serve what the classifier needs: " + "; ".join(fatal))
        for problem in skipped:
            log.warning("%s: those resources are not read", problem)
        target = self.sink.target if isinstance(self.sink, DryRunSink) else self.sink.name
        problems = caps.write_problems() if target == "server" else []
        if problems:
            message = (
                "the server cannot take fhir-ns's write-back (" + "; ".join(problems) + "); "
                "write transaction Bundles to files instead with --sink file:DIR"
            )
            if not self.options.dry_run:
                raise CapabilityError(message)
            log.warning("a real run would stop here: %s", message)
        self._caps = caps
        return caps

    def cohort(self, caps: Capabilities) -> tuple[list[str], str | None]:
        """The patients to consider, and the server's time at the start of the run (the next watermark)."""
        if self.options.patients:
            first = self.client.request("GET", "metadata")
            return sorted(set(self.options.patients)), first.server_date
        codes = sorted(
            f"{system}|{code}"
            for (system, code), concepts in self.config.terminology.condition_codes.items()
            if "nephrotic-syndrome" in concepts
        )
        params = {"code": ",".join(codes), "_count": PAGE_SIZE}
        if caps.can_search("Condition", "clinical-status"):
            # relapsing disease spends most of its time in remission: those patients stay in the cohort
            params["clinical-status"] = "active,recurrence,relapse,remission"
        patients: set[str] = set()
        server_time = None
        for page in self.client.search("Condition", params):
            server_time = server_time or _bundle_time(page.json_body) or page.server_date
            for resource in _resources(page.json_body):
                ref = (resource.get("subject") or {}).get("reference", "")
                if ref:
                    patients.add(ref.rstrip("/").split("/")[-1])
        return sorted(patients), server_time

    def candidates(self, caps: Capabilities, cohort: list[str]) -> list[str]:
        """Cohort patients touched since the watermark, new to the state, due for a re-check, or to retry."""
        watermark = self.options.since or self.state.watermark
        if self.options.patients or watermark is None:
            return cohort
        types = ["Patient", *PATIENT_PARAM]
        if not all(caps.last_updated(t) for t in types):
            log.warning("the server does not declare _lastUpdated on every type read: reading the whole cohort")
            return cohort
        self.summary.incremental = True
        touched: set[str] = set()
        own = self.settings.identifier_system("Observation")
        for rtype in types:
            for page in self.client.search(rtype, {"_lastUpdated": f"ge{watermark}", "_count": PAGE_SIZE}):
                for resource in _resources(page.json_body):
                    if any(isinstance(i, dict) and i.get("system") == own for i in resource.get("identifier") or ()):
                        continue  # a measure fhir-ns itself wrote: not a change in the patient's data
                    if rtype == "Patient":
                        touched.add(str(resource.get("id")))
                    else:
                        ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
                        touched.add(ref.rstrip("/").split("/")[-1])
        retry = set(orjson.loads(self.state.get_meta("retry") or "[]"))
        due = self.state.due_patients(self.options.as_of)
        known = self.state.known_patients()
        return [p for p in cohort if p in touched or p in retry or p in due or p not in known]

    # -- one patient -----------------------------------------------------------------------------
    def sync_patient(self, pid: str) -> None:
        try:
            resources = self.read_patient(pid)
        except (AuthError, UnreachableError):
            raise  # not this patient's problem: the run stops
        except ServerError as exc:
            self._fail(pid, f"read failed, nothing written: {exc}")
            return
        self.summary.read += 1
        input_hash = _hash(resources)
        known = self.state.patient(pid)
        time_passed = known is not None and known.revisit_on is not None and known.revisit_on <= self.options.as_of
        if known is not None and known.input_hash == input_hash and not time_passed:
            self.summary.unchanged += 1
            self.progress.done(pid, "unchanged", "")
            return
        problems: list[Problem] = []
        collector = FactCollector(self.config.terminology, problems)
        collector.add_all(Entry(r, Location(f"{r['resourceType']}/{r.get('id', '?')}")) for r in resources)
        patient = next((p for p in collector.patients() if p.facts.patient_id == pid), None)
        if patient is None:
            self._fail(pid, "no usable resources on the server")
            return
        if patient.refused:
            errors = "; ".join(str(p) for p in patient.problems if p.severity == "error")
            self._fail(pid, f"refused because of errors in its data: {errors}")
            return
        result = evaluate(
            patient.facts, self.config.rulesets, self.config.terminology, self.options.as_of, self.options.ruleset_id
        )
        self.write(pid, result, input_hash)

    def read_patient(self, pid: str) -> list[dict[str, Any]]:
        """The patient and every resource the classifier reads, all pages, Medications resolved."""
        patient = self.client.read("Patient", pid)
        if patient is None:
            raise ServerError(f"Patient/{pid} not found", 404)
        out = [patient]
        codes = ",".join(sorted(f"{s}|{c}" for s, c in self.config.terminology.observation_codes))
        assert self._caps is not None
        for rtype, param in PATIENT_PARAM.items():
            if not self._caps.can_search(rtype, param):
                continue
            params = {param: f"Patient/{pid}", "_count": PAGE_SIZE}
            if rtype == "Observation" and self._caps.can_search("Observation", "code"):
                params["code"] = codes
            for page in self.client.search(rtype, params):
                out.extend(r for r in _resources(page.json_body) if r.get("resourceType") == rtype)
        have = {f"Medication/{r.get('id')}" for r in out if r.get("resourceType") == "Medication"}
        for ref in sorted(_medication_refs(out) - have):
            medication = self.client.read("Medication", ref.split("/", 1)[1])
            if medication is not None:
                out.append(medication)
        return out

    def write(self, pid: str, result: PatientResult, input_hash: str) -> None:
        previous = {(w.resource_type, w.system, w.value): w for w in self.state.written(pid)}
        device = device_entry(self.settings)
        fresh = patient_entries(result, self.settings, device["fullUrl"])
        keys = {_key(e["resource"]) for e in fresh if _key(e["resource"])}
        stale = [w.resource for k, w in previous.items() if k not in keys and w.status not in WITHDRAWN]
        entries = patient_entries(result, self.settings, device["fullUrl"], stale) if stale else fresh
        written = [_written(e["resource"]) for e in entries if _key(e["resource"])]
        unchanged = all(
            (k := (w.resource_type, w.system, w.value)) in previous and previous[k].resource == w.resource
            for w in written
        )
        if unchanged and not stale:
            self.summary.unchanged += 1
            if not self.options.dry_run:
                self.state.commit_patient(
                    pid, input_hash, result.ruleset.ref, result.revisit_on, self.options.as_of.isoformat(), []
                )
            self.progress.done(pid, "unchanged", "same results as last written")
            return
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [device, *entries]}
        if self.options.dry_run:
            self.sink.write(pid, bundle)
            self.summary.would_write += 1
            self.progress.done(pid, "dry-run", _describe(entries, len(stale)))
            return
        try:
            self.sink.write(pid, bundle)
        except (AuthError, UnreachableError):
            raise
        except ServerError as exc:
            self._fail(pid, f"write failed (the transaction was not applied): {exc}")
            return
        self.state.commit_patient(
            pid, input_hash, result.ruleset.ref, result.revisit_on, self.options.as_of.isoformat(), written
        )
        self.summary.written += 1
        self.summary.withdrawn += len(stale)
        self.progress.done(pid, "written", _describe(entries, len(stale)))

    def _fail(self, pid: str, why: str) -> None:
        self.summary.failed[pid] = why
        self.progress.done(pid, "failed", why)


class ServerSink:
    name = "server"

    def __init__(self, client: FhirClient) -> None:
        self.client = client

    def write(self, patient_id: str, bundle: dict[str, Any]) -> None:
        answer = self.client.transaction(bundle)
        if answer.get("resourceType") != "Bundle" or not answer.get("type", "").endswith("response"):
            raise ServerError(f"Patient/{patient_id}: the server did not answer the transaction with a Bundle")
        bad = [
            e.get("response", {}).get("status", "")
            for e in answer.get("entry", [])
            if not str(e.get("response", {}).get("status", "")).startswith("2")
        ]
        if bad:
            raise ServerError(f"Patient/{patient_id}: transaction entries failed: {', '.join(bad)}")


class FileSink:
    """One transaction Bundle per patient in a directory, for servers that do not take these writes."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, patient_id: str, bundle: dict[str, Any]) -> None:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in patient_id)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the directory {self.directory}: {exc.strerror or exc}") from exc
        write_atomically(str(self.directory / f"{safe}.json"), orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")


class DryRunSink:
    """A dry run: one line per patient with each request its transaction would make (and the Bundle in a
    directory, if given); nothing reaches the server."""

    name = "dry-run"

    def __init__(self, say: Callable[[str], None], directory: Path | None = None, target: str = "server") -> None:
        self.say = say
        self.target = target  # the sink a real run would use, whose checks a dry run reports
        self.files = FileSink(directory) if directory is not None else None

    def write(self, patient_id: str, bundle: dict[str, Any]) -> None:
        self.say(f"Patient/{patient_id}: would " + ", ".join(_request(e) for e in bundle["entry"]))
        if self.files is not None:
            self.files.write(patient_id, bundle)


def _request(entry: dict[str, Any]) -> str:
    """`PUT DetectedIssue?identifier=... [srns-initial]`: the request, and what the resource says."""
    resource = entry["resource"]
    label = _written(resource).code if _key(resource) and resource["resourceType"] != "CarePlan" else ""
    if resource.get("status") in WITHDRAWN:
        label = f"{label}, {resource['status']}" if label else resource["status"]
    return f"{entry['request']['method']} {entry['request']['url']}" + (f" [{label}]" if label else "")


def _key(resource: dict[str, Any]) -> tuple[str, str, str] | None:
    if resource["resourceType"] not in ("DetectedIssue", "CarePlan", "Observation"):
        return None
    identifier = resource["identifier"][0]
    return resource["resourceType"], identifier["system"], identifier["value"]


def _written(resource: dict[str, Any]) -> Written:
    key = _key(resource)
    assert key is not None
    rtype = resource["resourceType"]
    if rtype == "DetectedIssue":
        code = resource["code"]["coding"][1]["code"]
    elif rtype == "Observation":
        code = resource["code"]["coding"][0]["code"]
    else:
        code = resource.get("title", "")
    return Written(key[0], key[1], key[2], code, resource["status"], resource)


def _describe(entries: list[dict[str, Any]], withdrawn: int) -> str:
    issues = [
        e["resource"]["code"]["coding"][1]["code"]
        for e in entries
        if e["resource"]["resourceType"] == "DetectedIssue" and e["resource"]["status"] != "cancelled"
    ]
    plans = sum(
        1 for e in entries if e["resource"]["resourceType"] == "CarePlan" and e["resource"]["status"] == "draft"
    )
    return f"{', '.join(issues) or 'no issues'}; {plans} care plan(s)" + (
        f"; {withdrawn} withdrawn" if withdrawn else ""
    )


def _resources(bundle: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource")
        if isinstance(resource, dict) and (entry.get("search") or {}).get("mode", "match") == "match":
            yield resource


def _bundle_time(bundle: dict[str, Any]) -> str | None:
    value = (bundle.get("meta") or {}).get("lastUpdated")
    return value if isinstance(value, str) else None


def _medication_refs(resources: list[dict[str, Any]]) -> set[str]:
    refs = set()
    for r in resources:
        ref = (r.get("medicationReference") or {}).get("reference", "")
        if ref.startswith("Medication/") or "/Medication/" in ref:
            refs.add("Medication/" + ref.rstrip("/").split("/")[-1])
    return refs


def _hash(resources: list[dict[str, Any]]) -> str:
    """A digest of a patient's inputs that ignores server bookkeeping (meta)."""
    digest = hashlib.sha256()
    for key, body in sorted(
        (
            f"{r.get('resourceType')}/{r.get('id')}",
            orjson.dumps({k: v for k, v in r.items() if k != "meta"}, option=orjson.OPT_SORT_KEYS),
        )
        for r in resources
    ):
        digest.update(key.encode())
        digest.update(body)
    return digest.hexdigest()
