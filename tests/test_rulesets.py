"""Shipped rule sets: they load, the right one is chosen by age at onset, and their definitions differ (RULES.md §1-3)."""

from datetime import date

import pytest

from fhir_ns.errors import ConfigError
from fhir_ns.timeline.timeline import Level
from tests.chart import RULESETS, Chart, codes, day

SHIPPED = {"ipna-2022-child", "kdigo-2021-child", "kdigo-2021-adult", "kdigo-2012-child", "source-documents"}


def only(result, code):
    found = [c for c in result.classifications if c.code == code]
    assert len(found) == 1, f"expected one {code}, got {codes(result)}"
    return found[0]


# -- loading and choosing ---------------------------------------------------------------------------------


def test_every_shipped_rule_set_loads():
    assert set(RULESETS) >= SHIPPED


@pytest.mark.parametrize("ruleset_id", sorted(SHIPPED))
def test_every_rule_set_is_labelled_with_its_id_version_and_sources(ruleset_id):
    ruleset = RULESETS[ruleset_id]
    assert ruleset.ref == f"{ruleset_id}|{ruleset.version}"
    assert ruleset.version and ruleset.sources


@pytest.mark.parametrize("ruleset_id", sorted(SHIPPED))
def test_every_rule_set_evaluates_a_chart_and_names_itself_in_the_result(ruleset_id):
    chart = Chart(born_years_before=30, weight=60, height=165).protein_24h(0, 5000).upcr(0, 600).albumin(0, 18)
    result = chart.prednisolone(0, 41, mg=60).upcr(14, 10).evaluate(60, ruleset_id)
    assert result.ruleset.id == ruleset_id
    assert result.as_json()["ruleset"] == RULESETS[ruleset_id].ref
    assert result.classifications


def test_ipna_2022_child_is_the_default_for_children_and_kdigo_2021_adult_for_adults():
    defaults = {r.default_for: r.id for r in RULESETS.values() if r.default_for}
    assert defaults == {"child": "ipna-2022-child", "adult": "kdigo-2021-adult"}


def nephrotic_at(born_years_before: float) -> Chart:
    return Chart(born_years_before=born_years_before, weight=70, height=175).upcr(0, 600)


def nephrotic_on_day_0_born_on(birth: date) -> Chart:
    chart = Chart(born_years_before=None, weight=70, height=175).upcr(0, 600)
    chart.facts.birth_date = birth
    return chart


def test_onset_at_18_and_a_half_years_chooses_kdigo_2021_adult():
    result = nephrotic_at(18.5).evaluate(10)
    assert result.ruleset.id == "kdigo-2021-adult"
    assert "age 18.5 years at onset" in result.ruleset_choice


def test_onset_on_the_18th_birthday_chooses_kdigo_2021_adult():
    assert day(0) == date(2023, 1, 2)
    result = nephrotic_on_day_0_born_on(date(2005, 1, 2)).evaluate(10)
    assert result.ruleset.id == "kdigo-2021-adult"


def test_onset_the_day_before_the_18th_birthday_chooses_ipna_2022_child():
    result = nephrotic_on_day_0_born_on(date(2005, 1, 3)).evaluate(10)
    assert result.ruleset.id == "ipna-2022-child"


def test_onset_at_17_and_a_half_years_chooses_ipna_2022_child():
    result = nephrotic_at(17.5).evaluate(10)
    assert result.ruleset.id == "ipna-2022-child"
    assert "age 17.5 years at onset" in result.ruleset_choice


def test_a_child_rule_set_open_above_hands_over_where_the_adult_rule_set_begins() -> None:
    """A site's child default with no upper age: the adult default's lower age parts them, not a number in code."""
    from fhir_ns.rules import evaluate
    from tests.chart import TERMINOLOGY

    child = RULESETS["ipna-2022-child"]
    adult = RULESETS["kdigo-2021-adult"]
    rulesets = {
        **RULESETS,
        child.id: child.model_copy(
            update={"population": child.population.model_copy(update={"onset_age_max_years": None})}
        ),
        adult.id: adult.model_copy(
            update={"population": adult.population.model_copy(update={"onset_age_min_years": 16})}
        ),
    }
    for years, chosen in ((15.5, child.id), (16.5, adult.id), (17.5, adult.id)):
        chart = nephrotic_at(years)
        chart.facts.sort()
        assert evaluate(chart.facts, rulesets, TERMINOLOGY, day(10)).ruleset.id == chosen, years


def test_the_rule_set_follows_the_age_at_onset_not_the_age_at_evaluation():
    result = nephrotic_at(17).evaluate(3 * 365)
    assert result.ruleset.id == "ipna-2022-child"


def test_a_rule_set_named_by_the_caller_wins_over_the_age():
    result = nephrotic_at(40).evaluate(10, "kdigo-2021-child")
    assert result.ruleset.id == "kdigo-2021-child"
    assert result.ruleset_choice == "named by the caller"


def test_an_unknown_rule_set_is_a_configuration_error():
    with pytest.raises(ConfigError, match="unknown rule set 'who-1990'"):
        nephrotic_at(6).evaluate(10, "who-1990")


# -- adults (kdigo-2021-adult) ------------------------------------------------------------------------------


def adult_on_prednisone(*upcr: tuple[int, float]) -> Chart:
    """A 40-year-old (70 kg) nephrotic on day 0 (UPCR 500 mg/mmol), on prednisone 70 mg/day (1 mg/kg) days 0-130."""
    chart = Chart(born_years_before=40, weight=70, height=175).upcr(0, 500).albumin(0, 20)
    chart.drug("prednisone", 0, 130, 70)
    for on, value in upcr:
        chart.upcr(on, value)
    return chart


NO_REMISSION = ((28, 450), (56, 450), (84, 450), (112, 450))


def test_an_adult_still_nephrotic_at_week_4_is_not_yet_steroid_resistant():
    result = adult_on_prednisone(*NO_REMISSION).evaluate(60)
    assert result.ruleset.id == "kdigo-2021-adult"
    assert codes(result) == ["response-pending"]
    assert f"week 16 response is decided on {day(112)}" in result.classifications[0].reason
    assert result.classifications[0].revisit_on == result.revisit_on == day(112)


def test_an_adult_without_remission_after_16_weeks_is_steroid_resistant():
    result = adult_on_prednisone(*NO_REMISSION).evaluate(130)
    assert codes(result) == ["srns-initial"]
    assert only(result, "srns-initial").since == day(112)
    assert "week 16" in only(result, "srns-initial").reason


def test_an_adult_in_partial_remission_by_week_16_is_not_steroid_resistant():
    # UPCR 500 -> 200 mg/mmol: a 60 % fall, below the nephrotic 300
    result = adult_on_prednisone((28, 450), (70, 200), (112, 200)).evaluate(130)
    assert "srns-initial" not in codes(result)
    assert codes(result) == ["ssns"]
    assert "partial remission" in result.classifications[0].reason


def test_an_adult_s_complete_remission_needs_normal_albumin():
    low_albumin = adult_on_prednisone((28, 20)).albumin(28, 30).timeline(60, "kdigo-2021-adult")
    normal_albumin = adult_on_prednisone((28, 20)).albumin(28, 38).timeline(60, "kdigo-2021-adult")
    assert low_albumin.episodes[0].remission is None
    assert normal_albumin.episodes[0].remission is not None
    assert normal_albumin.episodes[0].remission.on == day(28)


def test_an_adult_upcr_of_250_mg_per_mmol_is_not_nephrotic_range():
    assert (
        Chart(born_years_before=40).upcr(0, 250).timeline(1, "kdigo-2021-adult").readings[0].level is Level.INTERMEDIATE
    )


def test_an_adult_relapse_needs_one_value_above_3_5_g_per_day_after_cr():
    chart = adult_on_prednisone((28, 20)).albumin(28, 38).protein_24h(200, 4000)
    episodes = chart.timeline(210, "kdigo-2021-adult").episodes
    assert len(episodes) == 2 and episodes[1].start == day(200)


# -- children under the other rule sets ------------------------------------------------------------------


def nephrotic_at_week_4_then_cr_on_day_40() -> Chart:
    chart = Chart().upcr(0, 600).albumin(0, 18).prednisolone(0, 60, mg=48)
    return chart.upcr(28, 400).upcr(40, 10)


def test_kdigo_2012_judges_steroid_response_at_8_weeks():
    result = nephrotic_at_week_4_then_cr_on_day_40().evaluate(70, "kdigo-2012-child")
    assert codes(result) == ["ssns"]
    assert only(result, "ssns").since == day(40)


def test_ipna_judges_the_same_child_steroid_resistant_at_4_weeks():
    result = nephrotic_at_week_4_then_cr_on_day_40().evaluate(70, "ipna-2022-child")
    assert codes(result) == ["srns-initial"]


def test_under_the_source_documents_upcr_decides_nothing():
    result = Chart().upcr(0, 600).evaluate(10, "source-documents")
    assert codes(result) == ["insufficient-data"]
    assert "no nephrotic-range proteinuria" in result.classifications[0].reason


def test_under_the_source_documents_24h_protein_of_3_5_g_is_nephrotic():
    tl = Chart().protein_24h(0, 3500).timeline(1, "source-documents")
    assert tl.readings[0].level is Level.NEPHROTIC


def test_the_albumin_window_of_partial_remission_is_the_rule_sets_not_the_codes():
    from fhir_ns.rules import evaluate
    from tests.chart import TERMINOLOGY

    chart = Chart()
    chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 42, 48)
    chart.upcr(27, 100).albumin(17, 32)  # albumin 10 days before the week-4 UPCR
    chart.upcr(35, 10)
    chart.facts.sort()
    default = evaluate(chart.facts, RULESETS, TERMINOLOGY, day(60))
    assert [c.code for c in default.classifications] == ["insufficient-data"]
    assert "no albumin within 7 days" in default.classifications[0].reason
    ipna = RULESETS["ipna-2022-child"]
    wider = ipna.model_copy(
        update={"partial_remission": ipna.partial_remission.model_copy(update={"albumin_within_days": 14})}
    )
    result = evaluate(chart.facts, {**RULESETS, wider.id: wider}, TERMINOLOGY, day(60))
    assert [c.code for c in result.classifications] == ["ssns-late-responder"]
