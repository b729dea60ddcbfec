"""Server-sized output: `convert --output-dir` writes transaction Bundles of at most --max-entries entries
(a patient never split) or one per patient; a single Bundle larger than that is warned of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner, Result

from fhir_ns.cli import cli
from fhir_ns.errors import OUTPUT, USAGE
from fhir_ns.ruleset import load_rulesets
from fhir_ns.validate.output_profile import check_output
from tests.fhir_server import FhirServer

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "bundles"
AS_OF = "2025-01-01"


def convert(*args: str) -> Result:
    return CliRunner().invoke(cli, ["convert", str(SAMPLES), "--as-of", AS_OF, "-q", *args])


def bundles(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: orjson.loads(p.read_bytes()) for p in sorted(directory.iterdir())}


def patient_of(entry: dict[str, Any]) -> str | None:
    resource = entry["resource"]
    ref = (resource.get("patient") or resource.get("subject") or {}).get("reference")
    return ref


def test_bundles_of_at_most_n_entries_hold_every_entry_of_the_single_bundle_and_split_no_patient(
    tmp_path: Path,
) -> None:
    single = tmp_path / "one.json"
    assert convert("-o", str(single)).exit_code == 0
    whole = orjson.loads(single.read_bytes())["entry"]
    out = tmp_path / "out"
    result = convert("--output-dir", str(out), "--max-entries", "60")
    assert result.exit_code == 0, result.output
    written = bundles(out)
    assert list(written) == [f"bundle-{n:05d}.json" for n in range(1, len(written) + 1)]
    seen: list[dict[str, Any]] = []
    where: dict[str, str] = {}
    for name, bundle in written.items():
        entries = bundle["entry"]
        assert bundle["type"] == "transaction" and len(entries) <= 60
        assert entries[0] == whole[0]  # each carries the Device its Provenance names
        for entry in entries[1:]:
            patient = patient_of(entry)
            if patient is not None:
                assert where.setdefault(patient, name) == name, f"{patient} split across Bundles"
        seen += entries[1:]
        assert check_output(bundle, load_rulesets()) == []
    assert seen == whole[1:]


def test_one_bundle_per_patient_named_after_the_patient(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert convert("--output-dir", str(out), "--per-patient").exit_code == 0
    written = bundles(out)
    assert "cnir-ethan.json" in written and len(written) == len(list(SAMPLES.glob("*.json")))
    for name, bundle in written.items():
        patients = {patient_of(e) for e in bundle["entry"][1:]} - {None}
        assert patients == {f"Patient/{name.removesuffix('.json')}"}, name


def test_a_single_bundle_larger_than_max_entries_is_warned_of_naming_the_option(tmp_path: Path) -> None:
    big = convert("-o", str(tmp_path / "one.json"), "--max-entries", "20")
    assert big.exit_code == 0
    entries = len(orjson.loads((tmp_path / "one.json").read_bytes())["entry"])  # grows with the samples
    assert f"has {entries} entries, more than 20" in big.stderr and "--output-dir DIR" in big.stderr
    default = convert("-o", str(tmp_path / "two.json"))
    assert entries < 500 and "entries, more than" not in default.stderr  # within the default 500


def test_a_patient_larger_than_max_entries_gets_a_bundle_of_its_own_and_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = convert("--output-dir", str(out), "--max-entries", "3")
    assert result.exit_code == 0
    assert "one patient's transaction Bundle has" in result.stderr
    assert all(len({patient_of(e) for e in b["entry"][1:]} - {None}) == 1 for b in bundles(out).values())


def test_output_dir_mistakes_are_clean_errors(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.json").write_text("{}")
    assert convert("--output-dir", str(full)).exit_code == OUTPUT
    assert "not empty" in convert("--output-dir", str(full)).stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert convert("--output-dir", str(a_file / "sub")).exit_code == OUTPUT
    assert convert("--output-dir", str(tmp_path / "x"), "-o", str(tmp_path / "y.json")).exit_code == USAGE
    assert convert("--per-patient").exit_code == USAGE
    assert not (tmp_path / "x").exists()


def test_a_server_takes_every_bundle_and_ends_with_what_the_single_bundle_writes(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert convert("--output-dir", str(out), "--max-entries", "25").exit_code == 0
    for bundle in bundles(out).values():
        answer = fhir_server.session.post(
            fhir_server.base_url, data=orjson.dumps(bundle), headers={"Content-Type": "application/fhir+json"}
        )
        assert answer.status_code == 200, answer.text
    single = tmp_path / "one.json"
    assert convert("-o", str(single)).exit_code == 0
    expected = [e["resource"] for e in orjson.loads(single.read_bytes())["entry"]]
    for rtype in ("DetectedIssue", "CarePlan", "Provenance", "Device"):
        assert len(fhir_server.search(rtype)) == sum(r["resourceType"] == rtype for r in expected), rtype
