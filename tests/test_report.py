"""`fhir-ns report`: a cohort report a researcher can publish from, checked against a synthetic cohort shaped
like seed 004 whose ground truth the generator recorded itself, in a real browser, and at its edges."""

from __future__ import annotations

import csv
import http.server
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from fhir_ns.cli import cli
from fhir_ns.errors import CONFIG, INPUT_SKIPPED, NO_INPUT, OUTPUT, USAGE
from fhir_ns.report.stats import kaplan_meier, paired_test, summarise
from fhir_ns.report.tables import HORIZONS
from tests.test_progress import on_a_terminal
from tools.synthetic_cohort import THERAPY, Truth, write

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FILES = (
    "report.md",
    "report.html",
    "summary.json",
    "patients.csv",
    "patients.parquet",
    "measures.csv",
    "measures.parquet",
    "figures/categories.png",
    "figures/categories.svg",
)
THERAPY_FIGURES = (
    "figures/relapse-rate-paired.png",
    "figures/relapse-rate-paired.svg",
    "figures/first-relapse-km.png",
    "figures/first-relapse-km.svg",
)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["report", *args])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Truth], Path]:
    """Seed 004's cohort (9 SDNS, 5 SRNS children) and its report with tacrolimus + mizoribine."""
    root = tmp_path_factory.mktemp("synthetic")
    truths = write(root / "cohort")
    out = root / "report"
    result = run(
        str(root / "cohort" / "bundles"),
        "--therapy",
        "mizoribine + tacrolimus",  # another order than the measures' name: the same regimen
        "--as-of-file",
        str(root / "cohort" / "as-of.csv"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    return root, truths, out


def _close(a: Any, b: Any) -> None:
    """The report's figure equals the ground truth's (floating point computed in the same order: to 1e-9)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), (a, b)
        for key in b:
            _close(a[key], b[key])
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (a, b)
    else:
        assert a == b


def expected(truths: list[Truth]) -> dict[str, Any]:
    """Every figure of the therapy table, from the generator's own record, by the same statistical functions."""

    def s(values: list[float]) -> Any:
        summary = summarise(values)
        return None if summary is None else summary.as_json()

    def pairs(before: list[float | None], during: list[float | None]) -> list[tuple[float, float]]:
        return [(a, b) for a, b in zip(before, during, strict=True) if a is not None and b is not None]

    rate_before = [t.relapse_rate(during=False) for t in truths]
    rate_during = [t.relapse_rate(during=True) for t in truths]
    dose_before = [t.minimum_dose(during=False) for t in truths]
    dose_during = [t.minimum_dose(during=True) for t in truths]
    km = kaplan_meier([t.first_relapse() for t in truths])
    assert km is not None
    return {
        "n": len(truths),
        "age_at_start_years": s([t.age_at_start for t in truths]),
        "relapse_rate_per_year": {
            "before": s(rate_before),
            "during": s(rate_during),
            "wilcoxon": paired_test(pairs(list(rate_before), list(rate_during))).as_json(),
        },
        "minimum_maintenance_prednisolone_mg_per_kg_alternate_days": {
            "before": s([d for d in dose_before if d is not None]),
            "during": s([d for d in dose_during if d is not None]),
            "wilcoxon": paired_test(pairs(dose_before, dose_during)).as_json(),
        },
        "complete_remission_at_evaluation": sum(t.state == "complete-remission" for t in truths),
        "kidney_failure": sum(t.state == "kidney-failure" for t in truths),
        "state_known": len(truths),
        "follow_up_months": s([t.follow_up_months for t in truths]),
        "first_relapse": km.as_json([d for _, d in HORIZONS]),
        "period_before": {"cyclosporine": len(truths)},
    }


def test_every_figure_of_the_report_equals_the_generators_ground_truth(synthetic: Any) -> None:
    _, truths, out = synthetic
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["therapy"] == THERAPY
    evaluation = summary["evaluations"]["default by age at onset"]
    assert evaluation["evaluated"] == len(truths)
    assert evaluation["first_as_of"] == min(t.as_of for t in truths).isoformat()
    assert evaluation["last_as_of"] == max(t.as_of for t in truths).isoformat()
    assert sorted(evaluation["therapy_patients"]) == sorted(t.patient for t in truths)
    groups = {"All": truths, "SDNS": [t for t in truths if t.group == "sdns"]}
    groups["SRNS"] = [t for t in truths if t.group == "srns"]
    assert evaluation["therapy"].keys() == groups.keys()
    for name, members in groups.items():
        _close(evaluation["therapy"][name], expected(members))
    # the paper's shape: relapses and prednisolone fall on the multidrug therapy, significantly in SDNS
    sdns = evaluation["therapy"]["SDNS"]
    assert sdns["relapse_rate_per_year"]["during"]["mean"] < sdns["relapse_rate_per_year"]["before"]["mean"]
    assert sdns["relapse_rate_per_year"]["wilcoxon"]["p"] < 0.05
    assert evaluation["therapy"]["SRNS"]["kidney_failure"] == 1


def test_the_table_states_the_figures_with_rule_set_dates_and_n(synthetic: Any) -> None:
    _, truths, out = synthetic
    text = (out / "report.md").read_text()
    sdns = expected([t for t in truths if t.group == "sdns"])
    before = sdns["relapse_rate_per_year"]["before"]
    during = sdns["relapse_rate_per_year"]["during"]
    assert f"{before['mean']:.1f} ± {before['sd']:.1f} (n = 9)" in text
    assert f"{during['mean']:.1f} ± {during['sd']:.1f} (n = 9)" in text
    assert f"Wilcoxon signed-rank, 9 pairs: p = {sdns['relapse_rate_per_year']['wilcoxon']['p']:.2g}" in text
    assert "too few pairs for a test (5; at least 6 are needed)" in text  # the 5 SRNS children
    assert "ipna-2022-child|1.0.0 (14)" in text
    first, last = min(t.as_of for t in truths), max(t.as_of for t in truths)
    assert f"as of each patient's own date ({first} to {last})" in text
    assert "2 of 5 (40 %)" in text  # complete remission in SRNS, as in the paper


def test_the_synthetic_report_writes_every_file(synthetic: Any) -> None:
    _, truths, out = synthetic
    for name in (*FILES, *THERAPY_FIGURES, "therapy.csv"):
        assert (out / name).stat().st_size > 0, name
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".report.")]  # no temporary left
    with (out / "patients.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["patient"] for r in rows} == {t.patient for t in truths}
    assert {r["category"] for r in rows if r["patient"].startswith("syn-sdns")} >= {"sdns", "relapsing-on-cni"}
    assert pq.read_table(out / "patients.parquet").num_rows == len(rows)
    measures = pq.read_table(out / "measures.parquet").to_pylist()
    with (out / "measures.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(measures)
    with (out / "therapy.csv").open() as handle:
        therapy = {r["patient"]: r for r in csv.DictReader(handle)}
    assert therapy.keys() == {t.patient for t in truths}
    for t in truths:
        assert float(therapy[t.patient]["rate_before"]) == pytest.approx(t.relapse_rate(during=False))
        assert therapy[t.patient]["state"] == t.state
        assert therapy[t.patient]["group"] == t.group.upper()
    first = next(m for m in measures if m["patient"] == truths[0].patient and m["code"] == "relapse-count")
    assert first["evaluation"] == "default by age at onset" and first["ruleset"] == "ipna-2022-child|1.0.0"
    assert first["evidence"] and first["reason"]
    counts = [
        m["number"]
        for m in measures
        if m["patient"] == truths[0].patient and m["code"] == "relapse-count" and m["therapy"] == "cyclosporine"
    ]
    start, end = truths[0].period(during=False)
    assert counts == [sum(start <= day <= end for day in truths[0].relapses)]


def test_report_on_the_bundled_samples_under_two_rule_sets(tmp_path: Path) -> None:
    out = tmp_path / "samples-report"
    result = run(
        str(SAMPLES / "bundles"),
        "--ruleset",
        "ipna-2022-child",
        "--ruleset",
        "kdigo-2021-child",
        "--therapy",
        "cyclosporine",
        "--as-of",
        "2025-01-01",
        "-o",
        str(out),
    )
    assert result.exit_code in (0, INPUT_SKIPPED), result.output
    for name in FILES + THERAPY_FIGURES:
        assert (out / name).stat().st_size > 0, name
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert list(summary["evaluations"]) == ["ipna-2022-child", "kdigo-2021-child"]
    text = (out / "report.md").read_text()
    # frns-ruleset-difference.json: FRNS under IPNA (3 relapses in 12 months), not under KDIGO 2021 (needs 4)
    assert "Patients whose categories differ between rule sets" in text
    differ = text.split("Patients whose categories differ between rule sets", 1)[1].split("###", 1)[0]
    assert "frns-noah" in differ
    ipna = summary["evaluations"]["ipna-2022-child"]["categories"]
    kdigo = summary["evaluations"]["kdigo-2021-child"]["categories"]
    assert ipna["frns"] > kdigo.get("frns", 0)
    with (out / "patients.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["evaluation"] for r in rows} == {"ipna-2022-child", "kdigo-2021-child"}
    assert {r["as_of"] for r in rows} == {"2025-01-01"}


def test_a_patient_missing_from_the_as_of_file_is_reported_not_evaluated(tmp_path: Path) -> None:
    dates = tmp_path / "dates.csv"
    dates.write_text("patient,as_of\nssns-emma,2024-01-01\nnobody,2024-01-01\n")
    out = tmp_path / "out"
    result = run(str(SAMPLES / "bundles" / "ssns.json"), str(SAMPLES / "bundles" / "sdns.json"),
                 "--as-of-file", str(dates), "-o", str(out))  # fmt: skip
    assert result.exit_code == INPUT_SKIPPED
    assert "patient sdns-mia has no evaluation date in" in result.output
    assert "1 patient(s) of" in result.output and "nobody" in result.output
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["evaluations"]["default by age at onset"]["evaluated"] == 1
    assert "sdns-mia" in (out / "report.md").read_text()  # named in the report too


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,date\nssns-emma,2024-01-01\n", "the first line must be the header patient,as_of"),
        ("patient,as_of\nssns-emma,01/02/2024\n", "line 2: '01/02/2024' is not a date"),
        ("patient,as_of\nssns-emma,2024-01-01\nssns-emma,2024-02-01\n", "line 3: patient ssns-emma is given two dates"),
        ("patient,as_of\n", "no patient in it"),
    ],
)
def test_a_bad_as_of_file_is_a_usage_error_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    dates = tmp_path / "dates.csv"
    dates.write_text(content)
    result = run(str(SAMPLES / "bundles" / "ssns.json"), "--as-of-file", str(dates), "-o", str(tmp_path / "out"))
    assert result.exit_code == USAGE
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_rule_set_and_unknown_drug_are_refused_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(str(SAMPLES / "bundles" / "ssns.json"), "--ruleset", "ipna-2099", "-o", str(out))
    assert result.exit_code == CONFIG and "unknown rule set 'ipna-2099'" in result.output
    result = run(str(SAMPLES / "bundles" / "ssns.json"), "--therapy", "tacrolimus+mizorbine", "-o", str(out))
    assert result.exit_code == USAGE and "'mizorbine' is not a drug fhir-ns knows" in result.output
    result = run(str(SAMPLES / "bundles" / "ssns.json"), "--as-of", "2024-01-01", "--as-of-file", __file__)
    assert result.exit_code == USAGE and "not both" in result.output
    assert not out.exists()


def test_output_path_mistakes_are_refused_and_nothing_is_half_written(tmp_path: Path) -> None:
    sample = str(SAMPLES / "bundles" / "ssns.json")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = run(sample, "-o", str(a_file))
    assert result.exit_code == OUTPUT and "is a file, not a directory" in result.output
    result = run(sample, "-o", str(a_file / "report"))
    assert result.exit_code == OUTPUT and "lies under" in result.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.md").write_text("an earlier report")
    result = run(sample, "-o", str(full))
    assert result.exit_code == OUTPUT and "not empty" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(sample, "--as-of", "2024-01-01", "-o", str(empty)).exit_code == 0
    assert (empty / "report.html").exists()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = run(sample, "-o", str(locked / "report"))
        assert result.exit_code == OUTPUT and "cannot write" in result.output


def test_a_run_that_fails_while_writing_leaves_no_directory(tmp_path: Path, monkeypatch: Any) -> None:
    import fhir_ns.report.compose as report

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_files", broken)  # fault injection: a full disk at the last step
    out = tmp_path / "out"
    result = run(str(SAMPLES / "bundles" / "ssns.json"), "--as-of", "2024-01-01", "-o", str(out))
    assert result.exit_code == OUTPUT and "No space left on device" in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_nothing_readable_writes_no_report(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    result = run(str(empty), "-o", str(tmp_path / "out"))
    assert result.exit_code == NO_INPUT
    assert not (tmp_path / "out").exists()


def test_a_report_on_a_terminal_shows_its_progress_and_then_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    terminal, _ = on_a_terminal("report", str(SAMPLES / "cohort.ndjson"), "--as-of", "2024-01-01", "-o", str(out))
    assert b"fhir-ns: reading" in terminal and b"fhir-ns: evaluating" in terminal
    assert terminal.rstrip().endswith(b"patient(s) evaluated")
    assert (out / "report.html").exists()
    quiet, _ = on_a_terminal("report", str(SAMPLES / "cohort.ndjson"), "-q", "-o", str(tmp_path / "quiet"))
    assert b"fhir-ns: reading" not in quiet


def test_report_html_renders_tables_and_figures_in_a_real_browser(
    synthetic: Any, browser: Any, artefact: Callable[[str], Path]
) -> None:
    root, _, out = synthetic
    handler = partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/report.html")
        assert browser.title == "fhir-ns cohort report"
        tables = browser.find_elements("css selector", "table")
        assert len(tables) == 2
        rows = tables[1].find_elements("css selector", "tbody tr")
        assert len(rows) >= 20
        assert rows[0].find_elements("css selector", "td")[0].text == "14"
        images = browser.find_elements("css selector", "img")
        assert len(images) == 3
        for image in images:
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
        assert not browser.find_elements("css selector", "script, link[rel=stylesheet]")
        shot = artefact("report.png")
        browser.execute_script("document.querySelectorAll('table')[1].scrollIntoView()")
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_no_p_value_for_equal_pairs_and_no_estimate_beyond_the_longest_follow_up() -> None:
    # six children whose relapse rate did not change: nothing to test, said in words
    same = paired_test([(1.0, 1.0)] * 6)
    assert same.p is None and same.why_none == "every pair is equal: nothing to test"
    # relapses on days 100 and 300, two children followed 200 and 400 days without one
    km = kaplan_meier([(100, False), (200, True), (300, False), (400, True)])
    assert km is not None and (km.events, km.censored) == (2, 2)
    assert km.at(99) == 1.0 and km.at(100) == pytest.approx(0.75) and km.at(300) == pytest.approx(0.375)
    assert km.at(401) is None  # nobody was followed that long: not estimable, not the last value carried on
    assert km.median == 300 and km.at_risk(250) == 2
