"""`fhir-ns sync` against a real FHIR server (sekmet-fhir on 127.0.0.1): write-back, re-runs, changes,
a SIGKILL mid-run, dry runs, file sinks, capability refusal and authentication."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from fhir.resources.R4B.bundle import Bundle

from fhir_ns.cli import cli
from fhir_ns.errors import AUTH, CAPABILITY, CONFIG, INPUT_SKIPPED, OUTPUT, SERVER, UnreachableError
from tests.fhir_server import FhirServer

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED = {Path(c["file"]).stem: c for c in orjson.loads((SAMPLES / "expected.json").read_bytes())}
AS_OF = "2025-01-01"


def sample(name: str) -> dict[str, Any]:
    return orjson.loads((SAMPLES / "bundles" / f"{name}.json").read_bytes())


def sync(server: FhirServer, state: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(
        cli, ["sync", "--base-url", server.base_url, "--state", str(state), "--as-of", AS_OF, *args]
    )


def issues_by_patient(server: FhirServer) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for issue in server.search("DetectedIssue"):
        out[issue["patient"]["reference"].split("/")[-1]].append(issue)
    return out


def codes(issues: list[dict[str, Any]], status: str = "preliminary") -> list[str]:
    return sorted(i["code"]["coding"][1]["code"] for i in issues if i["status"] == status)


def assert_no_duplicates(server: FhirServer) -> None:
    for rtype in ("DetectedIssue", "CarePlan"):
        keys = collections.Counter(
            (r["identifier"][0]["system"], r["identifier"][0]["value"]) for r in server.search(rtype)
        )
        assert keys and max(keys.values()) == 1, f"duplicate {rtype}"


def test_first_sync_writes_each_patients_results_and_a_second_run_writes_nothing(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    names = ["ssns", "srns-initial", "cni-resistant", "sdns", "under-dosed-trial"]
    for name in names:
        fhir_server.load(sample(name))
    state = tmp_path / "state.sqlite"
    first = sync(fhir_server, state)
    assert first.exit_code == 0, first.output
    assert "written 5" in first.stderr and "(full)" in first.stderr
    by_patient = issues_by_patient(fhir_server)
    for name in names:
        expected = EXPECTED[name]
        pid = next(e["resource"]["id"] for e in sample(name)["entry"] if e["resource"]["resourceType"] == "Patient")
        assert codes(by_patient[pid]) == sorted(expected["classifications"] + expected["findings"]), name
    plans = fhir_server.search("CarePlan")
    revoked = [p["title"] for p in plans if p["status"] != "draft"]
    # the one plan not current is the CNI-resistant patient's SRNS plan, superseded by the CNI-resistant one
    assert plans and revoked == ["Steroid-resistant nephrotic syndrome (child) - proposed next steps"]
    provenance = fhir_server.search("Provenance")
    assert len(provenance) == 5 and all(p["agent"][0]["who"]["reference"].startswith("Device/") for p in provenance)
    assert_no_duplicates(fhir_server)
    versions = {i["id"]: i["meta"]["versionId"] for i in fhir_server.search("DetectedIssue")}

    second = sync(fhir_server, state)
    assert second.exit_code == 0, second.output
    assert "(incremental)" in second.stderr and "considered 0" in second.stderr
    assert {i["id"]: i["meta"]["versionId"] for i in fhir_server.search("DetectedIssue")} == versions


def test_a_change_in_a_patients_data_withdraws_findings_that_no_longer_hold(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    bundle = sample("srns-initial")
    [pid] = fhir_server.load(bundle)
    state = tmp_path / "state.sqlite"
    assert sync(fhir_server, state).exit_code == 0
    assert codes(issues_by_patient(fhir_server)[pid]) == ["srns-initial"]

    # The lab reports that the week-4 result belonged to another patient, and a day-14 UPCR shows remission.
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    upcrs = [o for o in observations if o["code"]["coding"][0]["code"] in ("34366-5", "2890-2")]
    for wrong in upcrs[1:]:
        fhir_server.put({**wrong, "status": "entered-in-error"})
    remission = {**upcrs[0], "id": f"{pid}-remission", "effectiveDateTime": _day(upcrs[0]["effectiveDateTime"], 14)}
    remission["valueQuantity"] = {
        **remission["valueQuantity"],
        "value": 0.1 if remission["valueQuantity"]["code"] == "mg/mg" else 12,
    }
    fhir_server.put(remission)

    result = sync(fhir_server, state)
    assert result.exit_code == 0, result.output
    assert "considered 1" in result.stderr and "withdrawn" in result.stderr
    issues = issues_by_patient(fhir_server)[pid]
    assert codes(issues) == ["ssns"]
    assert codes(issues, "cancelled") == ["srns-initial"]
    plans = [p for p in fhir_server.search("CarePlan") if p["subject"]["reference"] == f"Patient/{pid}"]
    revoked = [p for p in plans if p["status"] == "revoked"]
    drafts = [p for p in plans if p["status"] == "draft"]
    assert revoked and drafts
    replaced = {r["identifier"]["value"] for p in drafts for r in p.get("replaces", [])}
    assert {p["identifier"][0]["value"] for p in revoked} <= replaced
    assert_no_duplicates(fhir_server)


def test_a_run_killed_mid_write_resumes_without_duplicates_or_losses(fhir_server: FhirServer, tmp_path: Path) -> None:
    patients = []
    for i in range(30):
        patients += fhir_server.load(sample("srns-initial" if i % 2 else "ssns"), prefix=f"k{i:02d}-")
    state = tmp_path / "state.sqlite"
    command = [
        sys.executable,
        "-m",
        "fhir_ns",
        "sync",
        "--base-url",
        fhir_server.base_url,
        "--state",
        str(state),
        "--as-of",
        AS_OF,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    written = 0
    for line in process.stderr:
        written += ": written" in line
        if written == 7:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL
    done_before = len(issues_by_patient(fhir_server))
    assert 7 <= done_before < 30

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    by_patient = issues_by_patient(fhir_server)
    assert set(by_patient) == set(patients)
    for pid, issues in by_patient.items():
        assert codes(issues) == (["srns-initial"] if "srns" in pid else ["ssns"]), pid
    assert_no_duplicates(fhir_server)
    assert len(fhir_server.search("Provenance")) == 30


def test_dry_run_reads_and_classifies_but_writes_nothing(fhir_server: FhirServer, tmp_path: Path) -> None:
    fhir_server.load(sample("cni-resistant"))
    state = tmp_path / "state.sqlite"
    result = sync(fhir_server, state, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry-run (srns-initial, cni-resistant" in result.stderr and "would write 1" in result.stderr
    assert fhir_server.search("DetectedIssue") == [] and fhir_server.search("CarePlan") == []
    real = sync(fhir_server, state)
    assert "written 1" in real.stderr and "(full)" in real.stderr


def test_file_sink_writes_one_valid_transaction_per_patient(fhir_server: FhirServer, tmp_path: Path) -> None:
    fhir_server.load(sample("mdr-srns"))
    fhir_server.load(sample("frns"))
    out = tmp_path / "out"
    result = sync(fhir_server, tmp_path / "state.sqlite", "--sink", f"file:{out}")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.json"))
    assert [f.stem for f in files] == ["frns-sofia", "mdr-chloe"] or len(files) == 2
    for path in files:
        bundle = orjson.loads(path.read_bytes())
        Bundle.model_validate(bundle)
        assert bundle["type"] == "transaction"
    assert fhir_server.search("DetectedIssue") == []


def test_a_server_that_cannot_take_the_write_back_is_refused_with_advice(
    start_server: Callable[..., FhirServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(detectedissue_params=False)
    server.load(sample("ssns"))
    result = sync(server, tmp_path / "state.sqlite")
    assert result.exit_code == CAPABILITY
    assert "DetectedIssue" in result.stderr and "--sink file:DIR" in result.stderr
    assert "Traceback" not in result.output
    with caplog.at_level(logging.WARNING, logger="fhir_ns.sync"):
        dry = sync(server, tmp_path / "state.sqlite", "--dry-run")
    assert dry.exit_code == 0 and "would write 1" in dry.stderr  # the dry run still shows what it would write
    assert "a real run would stop here: the server cannot take fhir-ns's write-back" in caplog.text
    assert sync(server, tmp_path / "state.sqlite", "--sink", f"file:{tmp_path / 'files'}").exit_code == 0


def test_bearer_token_from_the_environment_and_a_wrong_token_is_an_auth_error(
    start_server: Callable[..., FhirServer], tmp_path: Path
) -> None:
    server = start_server({"types": ["bearer"], "tokens": ["s3cret-token"]})
    server.session.headers["Authorization"] = "Bearer s3cret-token"
    server.load(sample("ssns"))
    ok = sync(server, tmp_path / "a.sqlite", "--auth", "bearer", env={"FHIR_NS_TOKEN": "s3cret-token"})
    assert ok.exit_code == 0, ok.output
    bad = sync(server, tmp_path / "b.sqlite", "--auth", "bearer", env={"FHIR_NS_TOKEN": "wrong"})
    assert bad.exit_code == AUTH and "HTTP 401" in bad.stderr
    assert "wrong" not in bad.output and "s3cret" not in ok.output


def test_smart_backend_services_against_the_servers_own_token_endpoint(
    start_server: Callable[..., FhirServer], tmp_path: Path
) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for alg, key in (
        ("RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES384", ec.generate_private_key(ec.SECP384R1())),
    ):
        jwk = orjson.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update({"kid": f"key-{alg}", "alg": alg, "use": "sig"})
        pem = tmp_path / f"{alg}.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        server = start_server(
            {
                "types": ["smart"],
                "smart_clients": [{"client_id": "fhir-ns", "jwks": {"keys": [jwk]}, "scopes": "system/*.*"}],
            }
        )
        server.session.headers["Authorization"] = "Bearer " + _token(server, pem, alg)
        server.load(sample("srns-initial"))
        # sekmet checks a transaction against `*.write` as a whole (real servers check each entry)
        result = sync(
            server,
            tmp_path / f"{alg}.sqlite",
            "--auth",
            "smart-backend",
            "--smart-client-id",
            "fhir-ns",
            "--smart-key",
            str(pem),
            "--smart-kid",
            f"key-{alg}",
            "--smart-alg",
            alg,
            "--smart-scope",
            "system/*.read system/*.write",
        )
        assert result.exit_code == 0, result.output
        assert "written 1" in result.stderr
        unknown = sync(
            server,
            tmp_path / f"{alg}-x.sqlite",
            "--auth",
            "smart-backend",
            "--smart-client-id",
            "nobody",
            "--smart-key",
            str(pem),
            "--smart-kid",
            f"key-{alg}",
            "--smart-alg",
            alg,
        )
        assert unknown.exit_code == AUTH and "invalid_client" in unknown.stderr


def test_a_patient_with_bad_data_is_reported_and_the_others_are_written(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    fhir_server.load(sample("ssns"))
    [bad] = fhir_server.load(sample("srns-initial"))
    albumin = next(
        e["resource"]
        for e in sample("srns-initial")["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == "1751-7"
    )
    fhir_server.put(
        {
            **albumin,
            "valueQuantity": {"value": 2, "unit": "mg/mg", "system": "http://unitsofmeasure.org", "code": "mg/mg"},
        }
    )
    result = sync(fhir_server, tmp_path / "state.sqlite")
    assert result.exit_code == INPUT_SKIPPED
    assert f"failed Patient/{bad}: refused because of errors in its data" in result.stderr
    assert "unit 'mg/mg' is not accepted for serum albumin" in result.stderr
    assert set(issues_by_patient(fhir_server)) == {"ssns-emma"}


def _token(server: FhirServer, pem: Path, alg: str) -> str:
    """A token for loading data, from the server's own token endpoint."""
    from fhir_ns.fhir.server.auth import SmartBackendAuth

    auth = SmartBackendAuth(server.base_url, "fhir-ns", pem, f"key-{alg}", alg, "system/*.*")
    return auth.headers()["Authorization"].split(" ", 1)[1]


def _day(value: str, days: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(value[:10]) + timedelta(days=days)).isoformat() + value[10:]


def test_a_write_that_keeps_failing_skips_that_patient_only_and_the_next_run_completes_it(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    """The real server, with 503s injected at the transport for one patient's transaction."""
    from datetime import date

    import requests
    from requests.adapters import HTTPAdapter

    from fhir_ns.fhir.server.http import FhirClient, RetryPolicy
    from fhir_ns.pipeline import Config
    from fhir_ns.sync.job import ServerSink, SyncJob, SyncOptions
    from fhir_ns.sync.state import State

    [flaky] = fhir_server.load(sample("srns-initial"))
    [steady] = fhir_server.load(sample("ssns"))

    class FailWritesFor(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            if request.method == "POST" and f"Patient/{flaky}".encode() in (request.body or b""):
                response = requests.Response()
                response.status_code = 503
                response._content = (
                    b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}'
                )
                response.url = request.url or ""
                return response
            return super().send(request, **kwargs)

    class Quiet:
        def start(self, total: int) -> None: ...

        def done(self, patient_id: str, outcome: str, detail: str) -> None: ...

    def job(adapter: HTTPAdapter) -> SyncJob:
        session = requests.Session()
        session.mount("http://", adapter)
        client = FhirClient(
            fhir_server.base_url, session=session, sleep=lambda s: None, retry=RetryPolicy(max_attempts=3)
        )
        return SyncJob(
            client,
            State(tmp_path / "state.sqlite", fhir_server.base_url),
            Config.load(),
            ServerSink(client),
            SyncOptions(as_of=date.fromisoformat(AS_OF)),
            Quiet(),
        )

    summary = job(FailWritesFor()).run()
    assert list(summary.failed) == [flaky] and "HTTP 503 after 3 attempt(s)" in summary.failed[flaky]
    assert set(issues_by_patient(fhir_server)) == {steady}

    summary = job(HTTPAdapter()).run()
    assert summary.ok and summary.written == 1 and summary.incremental
    assert set(issues_by_patient(fhir_server)) == {steady, flaky}
    assert_no_duplicates(fhir_server)


def test_a_pending_answer_is_rechecked_when_its_window_closes_with_no_new_data(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    # prednisolone from 2023-05-15: the week-4 response is pending on 2023-06-01 and decided on 2023-06-12
    [pid] = fhir_server.load(sample("srns-initial"))
    state = tmp_path / "state.sqlite"

    def sync_as_of(day: str) -> Result:
        return CliRunner().invoke(
            cli, ["sync", "--base-url", fhir_server.base_url, "--state", str(state), "--as-of", day]
        )

    first = sync_as_of("2023-06-01")
    assert first.exit_code == 0, first.output
    assert codes(issues_by_patient(fhir_server)[pid]) == ["response-pending"]
    assert "considered 0" in sync_as_of("2023-06-11").stderr  # nothing changed, the window still open

    decided = sync_as_of("2023-06-12")
    assert decided.exit_code == 0, decided.output
    assert "considered 1" in decided.stderr
    issues = issues_by_patient(fhir_server)[pid]
    assert codes(issues) == ["srns-initial"]
    assert codes(issues, "cancelled") == ["response-pending"]
    assert_no_duplicates(fhir_server)


def test_sync_writes_the_same_care_plans_as_convert_revoked_superseded_plan_included(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    fhir_server.load(sample("cni-resistant"))
    assert sync(fhir_server, tmp_path / "state.sqlite").exit_code == 0
    out = tmp_path / "convert.json"
    converted = CliRunner().invoke(
        cli, ["convert", str(SAMPLES / "bundles" / "cni-resistant.json"), "--as-of", AS_OF, "-o", str(out)]
    )
    assert converted.exit_code == 0, converted.output

    def shape(plan: dict[str, Any]) -> tuple[Any, ...]:
        return (
            plan["identifier"][0]["value"],
            plan["status"],
            [r["identifier"]["value"] for r in plan.get("replaces", [])],
            [(a["detail"]["status"], a.get("outcomeReference")) for a in plan.get("activity", [])],
            plan.get("note"),
        )

    written = sorted(shape(p) for p in fhir_server.search("CarePlan"))
    expected = sorted(
        shape(e["resource"])
        for e in orjson.loads(out.read_bytes())["entry"]
        if e["resource"]["resourceType"] == "CarePlan"
    )
    assert written == expected
    assert {p[1] for p in written} == {"draft", "revoked"}
    assert any(p[2] for p in written)  # the current plan replaces the revoked one


def test_dry_run_prints_each_patients_requests_and_writes_no_state(fhir_server: FhirServer, tmp_path: Path) -> None:
    [pid] = fhir_server.load(sample("cni-resistant"))
    state = tmp_path / "state.sqlite"
    result = sync(fhir_server, state, "--dry-run")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert line.startswith(f"Patient/{pid}: would PUT Device?identifier=")
    requests = line.split(": would ", 1)[1].split(", PUT ")
    assert sum(r.startswith("DetectedIssue?identifier=") for r in requests) == 2
    assert "[srns-initial]" in line and "[cni-resistant]" in line
    assert any(r.startswith("CarePlan?identifier=") for r in requests)
    assert any(r.startswith("Provenance/") for r in requests)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state")] == []  # no -wal/-shm either


def test_dry_run_with_output_dir_writes_the_would_be_bundles_and_nothing_else(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    patients = fhir_server.load(sample("mdr-srns")) + fhir_server.load(sample("frns"))
    out = tmp_path / "preview"
    result = sync(fhir_server, tmp_path / "state.sqlite", "--dry-run", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(f.stem for f in out.glob("*.json")) == sorted(patients)
    for path in out.glob("*.json"):
        bundle = orjson.loads(path.read_bytes())
        Bundle.model_validate(bundle)
        urls = [e["request"]["url"] for e in bundle["entry"]]
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"Patient/{path.stem}:"))
        assert all(url in line for url in urls)  # the printed line and the file say the same
    assert fhir_server.search("DetectedIssue") == [] and not (tmp_path / "state.sqlite").exists()


def test_dry_run_leaves_an_existing_state_untouched_and_shows_what_a_real_run_would_do(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    fhir_server.load(sample("ssns"))
    state = tmp_path / "state.sqlite"
    assert sync(fhir_server, state).exit_code == 0
    before = (state.read_bytes(), state.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir()))
    dry = sync(fhir_server, state, "--dry-run", "--since", "2000-01-01T00:00:00Z")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout == "" and "unchanged 1" in dry.stderr  # a real run would write nothing either
    assert (state.read_bytes(), state.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir())) == before


def test_a_state_of_another_server_names_the_options_and_rebind_state_takes_it_over(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    fhir_server.load(sample("ssns"))
    state = tmp_path / "state.sqlite"
    assert sync(fhir_server, state).exit_code == 0
    moved = fhir_server.base_url.replace("127.0.0.1", "localhost")  # the same server at a new address
    args = ["sync", "--base-url", moved, "--state", str(state), "--as-of", AS_OF]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == CONFIG
    assert f"belongs to {fhir_server.base_url}, not {moved}" in refused.stderr
    assert "another --state file" in refused.stderr and "--rebind-state" in refused.stderr
    taken = CliRunner().invoke(cli, [*args, "--rebind-state"])
    assert taken.exit_code == 0, taken.output
    assert "(incremental)" in taken.stderr and "considered 0" in taken.stderr  # the watermark was kept
    assert CliRunner().invoke(cli, args).exit_code == 0


def test_a_first_run_against_a_wrong_url_does_not_block_the_corrected_run(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    from tests.fhir_server import free_port

    fhir_server.load(sample("ssns"))
    state = tmp_path / "state.sqlite"
    wrong = CliRunner().invoke(
        cli, ["sync", "--base-url", f"http://127.0.0.1:{free_port()}/fhir", "--state", str(state)]
    )
    assert wrong.exit_code == SERVER
    corrected = sync(fhir_server, state)
    assert corrected.exit_code == 0, corrected.output
    assert "written 1" in corrected.stderr


def test_a_server_lost_mid_run_stops_the_run_keeps_what_was_written_and_the_next_run_completes(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    """Connection refused injected at the transport from the second patient on: one stop, not a failure each."""
    from datetime import date

    import requests
    from requests.adapters import HTTPAdapter

    from fhir_ns.fhir.server.http import FhirClient
    from fhir_ns.pipeline import Config
    from fhir_ns.sync.job import ServerSink, SyncJob, SyncOptions
    from fhir_ns.sync.state import State

    for i in range(4):
        fhir_server.load(sample("ssns"), prefix=f"p{i}-")

    class GoneAfterOneWrite(HTTPAdapter):
        writes = 0

        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            if self.writes >= 1:
                raise requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
            self.writes += request.method == "POST"
            return super().send(request, **kwargs)

    class Seen:
        def __init__(self) -> None:
            self.outcomes: list[str] = []

        def start(self, total: int) -> None: ...

        def done(self, patient_id: str, outcome: str, detail: str) -> None:
            self.outcomes.append(outcome)

    def job(adapter: HTTPAdapter, progress: Seen) -> SyncJob:
        session = requests.Session()
        session.mount("http://", adapter)
        client = FhirClient(fhir_server.base_url, session=session, sleep=lambda s: None)
        state = State(tmp_path / "state.sqlite", fhir_server.base_url)
        options = SyncOptions(as_of=date.fromisoformat(AS_OF))
        return SyncJob(client, state, Config.load(), ServerSink(client), options, progress)

    progress = Seen()
    stopped = job(GoneAfterOneWrite(), progress)
    with pytest.raises(UnreachableError, match="connection refused"):
        stopped.run()
    assert progress.outcomes == ["written"] and len(issues_by_patient(fhir_server)) == 1
    stopped.state.close()

    again = job(HTTPAdapter(), Seen()).run()
    assert again.ok and again.written == 3 and len(issues_by_patient(fhir_server)) == 4
    assert_no_duplicates(fhir_server)


def test_a_full_disk_in_the_file_sink_stops_the_run_cleanly_and_the_next_run_writes_the_rest(
    fhir_server: FhirServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    fhir_server.load(sample("mdr-srns"))
    fhir_server.load(sample("frns"))
    out, state = tmp_path / "out", tmp_path / "state.sqlite"
    real_fsync, calls = os.fsync, []

    def full_after_one(fd: int) -> None:  # fault injection: the second Bundle finds the disk full
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_one)
    stopped = sync(fhir_server, state, "--sink", f"file:{out}")
    assert stopped.exit_code == OUTPUT, stopped.output
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fhir-ns: cannot write {out}/") and "No space left on device" in last
    assert "(full, stopped)" in stopped.stderr and "written 1" in stopped.stderr
    assert len(list(out.glob("*.json"))) == 1 and [p for p in out.iterdir() if p.suffix == ".tmp"] == []

    monkeypatch.setattr(os, "fsync", real_fsync)
    resumed = sync(fhir_server, state, "--sink", f"file:{out}")
    assert resumed.exit_code == 0, resumed.output
    assert "written 1" in resumed.stderr and len(list(out.glob("*.json"))) == 2


def test_sync_reads_a_patients_procedures_from_the_server(fhir_server: FhirServer, tmp_path: Path) -> None:
    """The plasma exchange of the multidrug sample is read by sync as by convert."""
    from datetime import date

    from fhir_ns.fhir.server.http import FhirClient
    from fhir_ns.pipeline import Config
    from fhir_ns.sync.job import ServerSink, SyncJob, SyncOptions
    from fhir_ns.sync.state import State

    [pid] = fhir_server.load(sample("multidrug-mizoribine"))
    client = FhirClient(fhir_server.base_url)

    class Quiet:
        def start(self, total: int) -> None: ...

        def done(self, patient_id: str, outcome: str, detail: str) -> None: ...

    job = SyncJob(
        client,
        State(tmp_path / "state.sqlite", fhir_server.base_url),
        Config.load(),
        ServerSink(client),
        SyncOptions(as_of=date.fromisoformat(AS_OF)),
        Quiet(),
    )
    job.check_capabilities()
    resources = job.read_patient(pid)
    assert [r["code"]["text"] for r in resources if r["resourceType"] == "Procedure"] == [
        "Therapeutic plasma exchange (TPE)"
    ]


def test_the_measures_land_as_observations_and_a_second_sync_writes_nothing(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    """The multidrug child's measures (RULES.md §9) are written as derived Observations, the same as `classify`
    gives; a second run writes nothing; new data and a later evaluation date update the open period in place."""
    [pid] = fhir_server.load(sample("multidrug-mizoribine"))
    state = tmp_path / "state.sqlite"
    assert sync(fhir_server, state).exit_code == 0
    [result] = orjson.loads(
        CliRunner().invoke(cli, ["classify", str(SAMPLES / "bundles" / "multidrug-mizoribine.json"), "--as-of", AS_OF,
                                 "--format", "json"]).stdout
    )  # fmt: skip
    system = "https://fhir-ns.example.org/fhir/identifier/Observation"
    written = [
        o for o in fhir_server.search("Observation", subject=f"Patient/{pid}")
        if o.get("identifier", [{}])[0].get("system") == system
    ]  # fmt: skip
    assert len(written) == len(result["measures"]) > 0
    by_key = {
        (o["code"]["coding"][0]["code"], o["effectivePeriod"]["start"]): o for o in written if o["status"] == "final"
    }
    for m in result["measures"]:
        o = by_key[(m["code"], m["period"]["start"])]
        assert o["effectivePeriod"]["end"] == m["period"]["end"] and o["subject"]["reference"] == f"Patient/{pid}"
        if m["unit"] is None:
            assert o["valueCodeableConcept"]["coding"][0]["code"] == m["value"]
        else:
            assert o["valueQuantity"]["code"] == m["unit"]
            assert o["valueQuantity"]["value"] == pytest.approx(m["value"], abs=0.001)
    versions = {o["id"]: o["meta"]["versionId"] for o in written}

    second = sync(fhir_server, state)
    assert second.exit_code == 0 and "considered 0" in second.stderr, second.output
    assert {
        o["id"]: o["meta"]["versionId"] for o in fhir_server.search("Observation") if o["id"] in versions
    } == versions

    # a new UPCR (in remission) months later: the patient is evaluated again, the open period updated in place
    upcr = next(
        e["resource"]
        for e in sample("multidrug-mizoribine")["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == "34366-5"
    )
    fhir_server.put(
        {
            **upcr,
            "id": f"{pid}-later",
            "effectiveDateTime": "2025-05-01",
            "valueQuantity": {**upcr["valueQuantity"], "value": 10},
        }
    )
    later = CliRunner().invoke(
        cli, ["sync", "--base-url", fhir_server.base_url, "--state", str(state), "--as-of", "2025-06-01",
              "--patient", pid]
    )  # fmt: skip
    assert later.exit_code == 0, later.output
    mine = [
        o for o in fhir_server.search("Observation", subject=f"Patient/{pid}")
        if o.get("identifier", [{}])[0].get("system") == system
    ]  # fmt: skip
    assert {o["id"] for o in mine} == set(versions)  # the same resources, updated: no duplicates
    state_now = next(o for o in mine if o["code"]["coding"][0]["code"] == "state-at-evaluation")
    assert state_now["effectivePeriod"]["end"] == "2025-06-01"
