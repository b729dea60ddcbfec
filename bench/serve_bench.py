"""Latency of `fhir-ns serve` as an EHR sees it: a real uvicorn process on loopback, calls with fresh JWTs.

    python -m bench.serve_bench [--requests 200] [--clients 1 20]

The patient is the bench cohort's story with exactly two years of data (110 resources: UPCR, albumin,
creatinine, dipsticks, weights, prednisolone courses, a steroid-sparing drug); its dates are moved so the
record ends about now. Measured: patient-view with the whole prefetch (1 and 20 concurrent clients), the
negative path (a patient with no nephrotic evidence), and patient-view with no prefetch at all, every key
fetched from a real FHIR server on loopback (sekmet-fhir). Each call's JWT is signed before the clock
starts; the times are the client's, from sending the request to reading the whole answer.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.cohort import AS_OF, PatientStory
from tests.cds_client import KEYS, PATIENT_VIEW, CdsService, hook_request, searchset
from tests.fhir_server import FhirServer
from tests.test_serve_auth import SigningKey

TWO_YEARS = 148  # the cohort story (seed 5) whose record spans 2021-09-15 to 2023-09-15
_DAY = re.compile(rb"(?<![0-9])(\d{4}-\d{2}-\d{2})(?![0-9])")


def two_year_record() -> list[dict[str, Any]]:
    """The story's resources, every date moved so that the bench's evaluation date is today."""
    shift = date.today() - AS_OF
    text = orjson.dumps(list(PatientStory(TWO_YEARS, 5).resources()))
    moved = _DAY.sub(lambda m: (date.fromisoformat(m[1].decode()) + shift).isoformat().encode(), text)
    resources: list[dict[str, Any]] = orjson.loads(moved)
    return resources


def prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, rtype in KEYS.items():
        matches = [r for r in resources if r["resourceType"] == rtype]
        out[key] = searchset(matches) if matches else None
    return out


def timed(cds: CdsService, bodies: list[bytes], clients: int) -> list[float]:
    """Milliseconds per call, `clients` calling at once; every call must answer 200."""
    path = f"/cds-services/{PATIENT_VIEW}"
    tokens = [cds.token(path) for _ in bodies]

    def one(i: int) -> float:
        headers = {"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json"}
        started = time.perf_counter()
        answer = cds.session.post(f"{cds.base}{path}", data=bodies[i], headers=headers, timeout=60)
        answer.content  # noqa: B018 - read the whole answer
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"call {i} answered {answer.status_code}: {answer.text[:200]}")
        return elapsed

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(one, range(len(bodies))))


def row(name: str, clients: int, times: list[float], target: float) -> str:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    verdict = "ok" if p95 <= target else "ABOVE TARGET"
    return f"{name:<44} {clients:>7} {len(times):>6} {p50:>8.1f} {p95:>8.1f} {target:>7.0f}  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="calls per measurement (default 200)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 20], help="concurrent clients (default 1 20)")
    parser.add_argument("--workers", type=int, default=1, help="fhir-ns serve --workers (default 1)")
    args = parser.parse_args()
    record = two_year_record()
    patient = next(r["id"] for r in record if r["resourceType"] == "Patient")
    print(
        f"patient-view for a patient with two years of data: {len(record)} resources; fhir-ns serve --workers "
        f"{args.workers}; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        server = FhirServer(Path(tmp) / "fhir")
        cds: CdsService | None = None
        try:
            server.load({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in record]})
            options = ("--workers", str(args.workers))
            cds = CdsService(Path(tmp) / "cds", SigningKey.new("ES384"), (server.base_url,), options)
            complete = orjson.dumps(hook_request("patient-view", patient, prefetch(record)))
            negative_record = {
                "patient": {"resourceType": "Patient", "id": "bench-negative", "birthDate": "2015-03-01"}
            }
            negative_record |= {key: None for key in KEYS}
            negative = orjson.dumps(hook_request("patient-view", "bench-negative", negative_record))
            fallback = orjson.dumps(hook_request("patient-view", patient, {}, fhirServer=server.base_url))
            measurements: list[tuple[str, bytes, int, float]] = [
                *(
                    (f"complete prefetch ({len(complete) // 1024} KiB request)", complete, c, 50.0)
                    for c in args.clients
                ),
                ("negative path (no nephrotic evidence)", negative, 1, 5.0),
                ("prefetch absent: fetched from sekmet-fhir", fallback, 1, 500.0),
            ]
            timed(cds, [complete] * 20, 1)  # warm up: imports, first evaluation, connection pools
            timed(cds, [fallback] * 3, 1)
            print(f"{'measurement':<44} {'clients':>7} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'target':>7}")
            for name, body, clients, target in measurements:
                count = args.requests if "fetched" not in name else max(20, args.requests // 4)
                print(row(name, clients, timed(cds, [body] * count, clients), target), flush=True)
        finally:
            if cds is not None:
                cds.stop()
            server.stop()


if __name__ == "__main__":
    main()
