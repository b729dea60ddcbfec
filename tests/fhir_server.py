"""A real FHIR server for the tests: sekmet-fhir in its own venv, started on 127.0.0.1, stopped after.

The venv is `.venv-sekmet` at the repository root (FHIR_NS_SEKMET_VENV overrides); it is created and
sekmet-fhir installed into it when missing, so the tests need nothing installed by hand.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
SEKMET = "sekmet-fhir==0.1.1"
LAUNCHER = Path(__file__).resolve().parent / "sekmet_launcher.py"


def sekmet_python() -> Path:
    venv = Path(os.environ.get("FHIR_NS_SEKMET_VENV", ROOT / ".venv-sekmet"))
    python = venv / "bin" / "python"
    ready = venv / ".fhir-ns-installed"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", SEKMET], check=True)
        ready.write_text(SEKMET)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, statuses: tuple[int, ...], seconds: float, what: str
) -> None:
    """Wait until `url` answers one of `statuses`; fail at once if the process ends, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code in statuses:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it does not end within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


class FhirServer:
    """One sekmet process with a fresh data directory."""

    def __init__(
        self, data_dir: Path, server_auth: dict[str, Any] | None = None, detectedissue_params: bool = True
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(sekmet_python()), str(LAUNCHER), str(self.port), str(data_dir)]
        if server_auth:
            args.append(json.dumps(server_auth))
        if not detectedissue_params:
            args.append("--no-detectedissue-params")
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/fhir+json"
        self._wait()

    def _wait(self) -> None:
        wait_until_answering(self.process, f"{self.base_url}/metadata", (200, 401), 90, "the FHIR server")

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()

    # -- helpers for tests -------------------------------------------------------------------------
    def load(self, bundle: dict[str, Any], prefix: str = "") -> list[str]:
        """PUT every resource of a sample Bundle (ids and references prefixed), as one transaction."""
        if prefix:
            bundle = _prefixed(bundle, prefix)
        entries = [
            {
                "fullUrl": e.get("fullUrl"),
                "resource": e["resource"],
                "request": {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"},
            }
            for e in bundle["entry"]
        ]
        answer = self.session.post(
            self.base_url,
            data=orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            headers={"Content-Type": "application/fhir+json"},
            timeout=60,
        )
        answer.raise_for_status()
        return [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]

    def put(self, resource: dict[str, Any]) -> None:
        answer = self.session.put(
            f"{self.base_url}/{resource['resourceType']}/{resource['id']}",
            data=orjson.dumps(resource),
            headers={"Content-Type": "application/fhir+json"},
        )
        answer.raise_for_status()

    def search(self, rtype: str, **params: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = f"{self.base_url}/{rtype}"
        query: dict[str, str] | None = {"_count": "500", **params}
        while url:
            page = self.session.get(url, params=query, timeout=30).json()
            out.extend(e["resource"] for e in page.get("entry", []))
            url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
            query = None
        return out


def _prefixed(bundle: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The bundle with every resource id, reference and urn:uuid made unique with `prefix`."""
    text = orjson.dumps(bundle).decode()
    for entry in bundle["entry"]:
        r = entry["resource"]
        rid = r["id"]
        text = text.replace(f'"id":"{rid}"', f'"id":"{prefix}{rid}"')
        text = text.replace(f'"{r["resourceType"]}/{rid}"', f'"{r["resourceType"]}/{prefix}{rid}"')
        full = entry.get("fullUrl", "")
        if full.startswith("urn:uuid:"):
            text = text.replace(full, f"urn:uuid:{_uuid_for(prefix, full)}")
    return orjson.loads(text)


def _uuid_for(prefix: str, full_url: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, prefix + full_url))
