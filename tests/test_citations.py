"""Every citation a clinician reads is a real reference (RULES.md §11): never a project seed, never a bare tag."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_ns.cli import cli
from tests.chart import RULESETS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CASES = {c["file"]: c for c in json.loads((SAMPLES / "expected.json").read_text())}
# "seed 003", "seeds 002, 003", and the internal provenance tags [M], [S], [D], [S/M], [D 003], [S via ...]
UNCITABLE = re.compile(r"\bseeds? 0|\[(?:S|M|D)(?:\]|[ /])")


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code in (0, 1), result.output  # 1: input problems reported, output still written
    return result.stdout


def outputs(inputs: str, as_of: str, ruleset: str | None = None) -> dict[str, str]:
    named = ["--ruleset", ruleset] if ruleset else []
    return {
        "classify text": run("classify", inputs, "--as-of", as_of, *named),
        "classify json": run("classify", inputs, "--as-of", as_of, "--format", "json", *named),
        "convert": run("convert", inputs, "--as-of", as_of, *named),
    }


def assert_citable(outputs: dict[str, str]) -> None:
    for door, text in outputs.items():
        assert text.strip(), f"{door} printed nothing"
        found = sorted({m.group(0) for m in UNCITABLE.finditer(text)})
        assert not found, f"{door} cites {found}"


@pytest.mark.parametrize("sample", sorted(CASES))
def test_every_sample_cites_only_real_references(sample: str) -> None:
    case = CASES[sample]
    assert_citable(outputs(str(SAMPLES / sample), case["as_of"], case["ruleset"]))


@pytest.mark.parametrize("ruleset", sorted(RULESETS))
def test_every_rule_set_cites_only_real_references(ruleset: str) -> None:
    """Each rule set's own sources (dose ranges, plans) on every sample, late enough for every finding."""
    assert_citable(outputs(str(SAMPLES / "bundles"), "2025-01-01", ruleset))


def test_the_rule_set_list_cites_only_real_references() -> None:
    assert_citable({"rulesets": run("rulesets")})
