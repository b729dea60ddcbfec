"""Body size and kidney function formulas (RULES.md §6), on plain numbers."""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache

CREATININE_UMOL_PER_MG_DL = 88.4


def bsa_mosteller(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m²: sqrt(height cm x weight kg / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def schwartz_bedside(height_cm: float, creatinine_umol_l: float) -> float:
    """Bedside Schwartz eGFR (mL/min/1.73 m²), children: 0.413 x height cm / SCr mg/dL."""
    return 0.413 * height_cm / (creatinine_umol_l / CREATININE_UMOL_PER_MG_DL)


def ckd_epi_2021(creatinine_umol_l: float, age_years: float, female: bool) -> float:
    """CKD-EPI 2021 race-free creatinine eGFR (mL/min/1.73 m²), adults."""
    scr = creatinine_umol_l / CREATININE_UMOL_PER_MG_DL
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = scr / kappa
    egfr = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * 1.012 if female else egfr


def gfr_category(egfr: float) -> str:
    """KDIGO GFR category G1-G5."""
    for bound, category in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= bound:
            return category
    return "G5"


def age_years(birth: date, day: date) -> float:
    """Age in years on `day`: completed years (birthdays counted by the calendar) plus the year's fraction."""
    years = completed_years(birth, day)
    last, length = _year_of_age(birth, birth.year + years)
    return years + (day - last).days / length


def completed_years(birth: date, day: date) -> int:
    """Birthdays passed by `day` (age_years without the fraction, which never reaches the next birthday)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@lru_cache(maxsize=4096)
def _year_of_age(birth: date, year: int) -> tuple[date, int]:
    """The birthday in `year` and the days until the next one (kept: a patient's ages fall in a few such years)."""
    last = _birthday(birth, year)
    return last, (_birthday(birth, year + 1) - last).days


def _birthday(birth: date, year: int) -> date:
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 3, 1)
