"""Body size and kidney function formulas, checked against the test vectors of RULES.md §6."""

import pytest

from fhir_ns.timeline.formulas import bsa_mosteller, ckd_epi_2021, gfr_category, schwartz_bedside
from tests.chart import TERMINOLOGY

MG_DL_TO_UMOL_L = TERMINOLOGY.concepts["creatinine"].unit_rule("mg/dL").factor  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("height_cm", "weight_kg", "bsa_m2"),
    [(100, 16, 0.667), (140, 35, 1.167), (175, 70, 1.845)],
)
def test_mosteller_body_surface_area_matches_the_published_vectors(height_cm, weight_kg, bsa_m2):
    assert bsa_mosteller(height_cm, weight_kg) == pytest.approx(bsa_m2, abs=0.0005)


def test_creatinine_in_mg_per_dl_is_converted_to_umol_per_l_by_88_4():
    assert MG_DL_TO_UMOL_L == 88.4


def test_bedside_schwartz_from_creatinine_in_mg_per_dl():
    # 0.413 x 100 cm / 0.5 mg/dL = 82.6
    assert schwartz_bedside(100, 0.5 * MG_DL_TO_UMOL_L) == pytest.approx(82.6, abs=0.05)


def test_bedside_schwartz_from_creatinine_in_umol_per_l():
    # 36.5 x 100 cm / 44.2 umol/L = 82.6
    assert schwartz_bedside(100, 44.2) == pytest.approx(82.6, abs=0.05)


def test_bedside_schwartz_halves_when_creatinine_doubles():
    assert schwartz_bedside(120, 88.4) == pytest.approx(schwartz_bedside(120, 44.2) / 2)


@pytest.mark.parametrize(
    ("sex", "age", "creatinine_mg_dl", "egfr"),
    [("female", 55, 0.9, 75.5), ("male", 50, 1.0, 91.7), ("male", 40, 0.7, 119.5), ("female", 30, 0.6, 123.8)],
)
def test_ckd_epi_2021_matches_the_published_vectors(sex, age, creatinine_mg_dl, egfr):
    value = ckd_epi_2021(creatinine_mg_dl * MG_DL_TO_UMOL_L, age, female=sex == "female")
    assert value == pytest.approx(egfr, abs=0.05)


def test_ckd_epi_2021_gives_a_woman_a_different_value_than_a_man_of_the_same_age_and_creatinine():
    assert ckd_epi_2021(0.9 * 88.4, 55, female=True) != pytest.approx(ckd_epi_2021(0.9 * 88.4, 55, female=False))


@pytest.mark.parametrize(
    ("egfr", "category"),
    [
        (120, "G1"),
        (90, "G1"),
        (89.9, "G2"),
        (60, "G2"),
        (59.9, "G3a"),
        (45, "G3a"),
        (44.9, "G3b"),
        (30, "G3b"),
        (29.9, "G4"),
        (15, "G4"),
        (14.9, "G5"),
        (5, "G5"),
    ],
)
def test_gfr_category_boundaries(egfr, category):
    assert gfr_category(egfr) == category
