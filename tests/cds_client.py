"""A scripted CDS client (the EHR's side of CDS Hooks 2.0) and `fhir-ns serve` run as a real uvicorn process.

The service is started on 127.0.0.1 with a configuration file trusting one EHR (an ES384 key made here,
handed over as a JWK Set file); every call carries a fresh JWT for the endpoint called, as an EHR sends it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml

from fhir_ns.serve.prefetch import SEARCHES
from tests.fhir_server import free_port, stop_process, wait_until_answering
from tests.test_serve_auth import EHR, SigningKey, jwks_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "bundles"
PATIENT_VIEW = "fhir-ns-patient-view"
ORDER_SELECT = "fhir-ns-order-select"
ORDER_SIGN = "fhir-ns-order-sign"
# the prefetch keys of the patient-view service and the resource types each holds
KEYS = {key: rtype for key, (rtype, _, _) in SEARCHES.items()}


class CdsService:
    """One `fhir-ns serve` process with its own state directory; `settings` go into its configuration file,
    `options` on its command line."""

    def __init__(
        self,
        workdir: Path,
        key: SigningKey,
        fhir_servers: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        **settings: Any,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "public_url": self.base,
            "state_dir": "state",
            "prefetch_timeout_s": 2,
            "auth": {
                "issuers": [
                    {
                        "iss": EHR,
                        "jwks_file": jwks_file(workdir / "ehr-jwks.json", key).name,
                        "fhir_servers": list(fhir_servers),
                    }
                ],
                "replay_db": "state/replay.sqlite",
            },
            **settings,
        }
        self.config_path = workdir / "serve.yaml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log_path = workdir / "serve.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fhir_ns",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
                *options,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.session = requests.Session()
        self._wait()

    def _wait(self) -> None:
        try:
            wait_until_answering(self.process, f"{self.base}/cds-services", (401,), 60, "fhir-ns serve")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log()}") from None

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- the EHR's calls -------------------------------------------------------------------------------------
    def token(self, path: str, **claims: Any) -> str:
        return self.key.token(aud=f"{self.base}{path}", **claims)

    def get(self, path: str, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token(path)}"}
        return self.session.get(f"{self.base}{path}", headers=headers, timeout=30)

    def post(self, path: str, body: Any, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token(path)}", "Content-Type": "application/json"}
        return self.session.post(f"{self.base}{path}", data=orjson.dumps(body), headers=headers, timeout=30)

    def call(self, service: str, body: dict[str, Any], token: str | None = None) -> requests.Response:
        return self.post(f"/cds-services/{service}", body, token)

    def cards(self, service: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self.call(service, body)
        assert answer.status_code == 200, answer.text
        cards: list[dict[str, Any]] = answer.json()["cards"]
        return cards

    def feedback(self, service: str, *items: dict[str, Any]) -> requests.Response:
        return self.post(f"/cds-services/{service}/feedback", {"feedback": list(items)})


def sample(name: str) -> dict[str, Any]:
    bundle: dict[str, Any] = orjson.loads((SAMPLES / f"{name}.json").read_bytes())
    return bundle


def resources_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def patient_id_of(bundle: dict[str, Any]) -> str:
    return next(str(r["id"]) for r in resources_of(bundle) if r["resourceType"] == "Patient")


def searchset(resources: list[dict[str, Any]], included: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources), "entry": entries}


def prefetch_of(bundle: dict[str, Any], keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The prefetch an EHR sends for the patient of a sample bundle: every key (or only `keys`) filled."""
    resources = resources_of(bundle)
    medications = [r for r in resources if r["resourceType"] == "Medication"]
    out: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, rtype in KEYS.items():
        matches = [r for r in resources if r["resourceType"] == rtype]
        included = medications if rtype.startswith("Medication") else []
        out[key] = searchset(matches, included) if matches else None
    return out if keys is None else {k: v for k, v in out.items() if k in keys}


def hook_request(hook: str, patient_id: str, prefetch: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id, **extra.pop("context", {})},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


_DAY = re.compile(rb"(?<![0-9])(\d{4}-\d{2}-\d{2})(?![0-9])")


def as_of_today(name: str) -> dict[str, Any]:
    """A sample bundle with every date moved so that its evaluation date (samples/expected.json) is today: the
    service judges the record as of today, as the sample's answer was judged as of its date."""
    shift = date.today() - date.fromisoformat(expected(name)["as_of"])
    text = (SAMPLES / f"{name}.json").read_bytes()
    moved = _DAY.sub(lambda m: (date.fromisoformat(m[1].decode()) + shift).isoformat().encode(), text)
    bundle: dict[str, Any] = orjson.loads(moved)
    return bundle


def expected(name: str) -> dict[str, Any]:
    """A sample's answer (samples/expected.json)."""
    answers: list[dict[str, Any]] = orjson.loads((ROOT / "samples" / "expected.json").read_bytes())
    return next(e for e in answers if Path(e["file"]).stem == name)
