"""Sync throughput against a real FHIR server on loopback (sekmet-fhir, started here).

    python -m bench.sync_bench [--copies 12]

Loads `copies` x the 17 sample patients (ids prefixed), then measures in one process:
a first full sync, a second run with nothing changed, and an incremental run after 1 % of the
patients changed; prints patients/minute and the share of time spent waiting on the server.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path

import orjson

from fhir_ns.fhir.server.http import FhirClient
from fhir_ns.pipeline import Config
from fhir_ns.sync.job import ServerSink, SyncJob, SyncOptions
from fhir_ns.sync.state import State
from tests.fhir_server import FhirServer

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "bundles"


class Quiet:
    def start(self, total: int) -> None: ...

    def done(self, patient_id: str, outcome: str, detail: str) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = FhirServer(Path(tmp) / "server")
        try:
            run(server, Path(tmp), args.copies)
        finally:
            server.stop()


def run(server: FhirServer, tmp: Path, copies: int) -> None:
    bundles = {p.stem: orjson.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("*.json"))}
    started = time.perf_counter()
    patients: list[str] = []
    for i in range(copies):
        for bundle in bundles.values():
            patients += server.load(bundle, prefix=f"b{i:03d}-")
    print(f"loaded {len(patients)} patients in {time.perf_counter() - started:.1f} s")
    config = Config.load()
    state = State(tmp / "state.sqlite", server.base_url)
    rows = []

    def measure(label: str) -> None:
        client = FhirClient(server.base_url)
        job = SyncJob(client, state, config, ServerSink(client), SyncOptions(as_of=date(2025, 1, 1)), Quiet())
        summary = job.run()
        assert summary.ok, summary.failed
        minutes = summary.seconds / 60
        rate = summary.cohort / minutes if minutes else float("inf")
        rows.append(
            (
                label,
                summary.cohort,
                summary.candidates,
                summary.written,
                summary.seconds,
                rate,
                client.stats.server_seconds / summary.seconds if summary.seconds else 0.0,
                client.stats.requests,
            )
        )

    measure("first full sync")
    measure("re-run, nothing changed")
    changed = random.Random(1).sample(patients, max(1, len(patients) // 100))
    for pid in changed:
        patient = server.search("Patient", _id=pid)[0]
        patient.setdefault("telecom", []).append({"system": "phone", "value": "+0 000 000"})
        server.put(patient)
    measure(f"incremental, {len(changed)} changed (1 %)")
    print(
        f"{'run':<32} {'cohort':>6} {'read':>5} {'written':>7} {'seconds':>8} {'cohort/min':>10} "
        f"{'server share':>12} {'requests':>8}"
    )
    for label, cohort, read, written, seconds, rate, share, requests in rows:
        print(
            f"{label:<32} {cohort:>6} {read:>5} {written:>7} {seconds:>8.2f} {rate:>10.0f} {share:>12.0%} {requests:>8}"
        )
    full = rows[0]
    print(
        f"first full sync: {full[1] / (full[4] / 60):.0f} patients/min; incremental (1 %): "
        f"{rows[2][1] / (rows[2][4] / 60):.0f} cohort patients/min ({rows[2][2]} re-read)"
    )


if __name__ == "__main__":
    main()
