"""The report's tables, as plain rows of text (the writers lay them out as Markdown and HTML), and the same
figures at full precision for summary.json. Every table says its rule set(s), evaluation date(s) and n."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fhir_ns.catalogue import info
from fhir_ns.report.cohort import DAYS_PER_YEAR, OTHER_GROUP, Cohort, Evaluation, Tally, TherapyRow
from fhir_ns.report.stats import KaplanMeier, PairedTest, Summary, kaplan_meier, paired_test, summarise

HORIZONS = tuple((months, round(months * DAYS_PER_YEAR / 12)) for months in (6, 12, 18))  # (months, days)
DIFFERING_SHOWN = 200  # patients listed in the report whose categories differ; all are in patients.csv
GROUP_ORDER = ("SDNS", "SRNS", "FRNS", OTHER_GROUP)


@dataclass(slots=True)
class Table:
    title: str
    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    numeric: bool = True  # cells after the first are figures (aligned right), not words


def dates(tally: Tally) -> str:
    """The evaluation date(s) of a tally, in words."""
    if tally.first_as_of is None:
        return "no patient evaluated"
    if tally.first_as_of == tally.last_as_of:
        return f"as of {tally.first_as_of}"
    return f"as of each patient's own date ({tally.first_as_of} to {tally.last_as_of})"


def rulesets(evaluation: Evaluation, tally: Tally) -> str:
    """The rule set(s) applied under an evaluation, with how many patients each."""
    applied = ", ".join(
        f"{ref or 'none could be chosen'} ({n})" for ref, n in sorted(tally.rulesets.items(), key=lambda i: i[0])
    )
    if evaluation.ruleset_id is None:
        return f"rule set chosen per patient by age at onset: {applied or 'none'}"
    return f"rule set {applied or evaluation.ruleset_id}"


def category_table(cohort: Cohort) -> Table:
    header = ["Category"] + [
        f"{e.label} (N = {cohort.tallies[e].evaluated}, {dates(cohort.tallies[e])})" for e in cohort.evaluations
    ]
    codes = sorted(set().union(*(t.categories for t in cohort.tallies.values())))
    table = Table(
        "Patients per category",
        "Patients who met each category by their evaluation date, n (% of N evaluated); a patient counts once in "
        "every category met. " + "; ".join(f"{e.label}: {rulesets(e, cohort.tallies[e])}" for e in cohort.evaluations),
        header,
    )
    for code in codes:
        cells = []
        for e in cohort.evaluations:
            tally = cohort.tallies[e]
            n = tally.categories.get(code, 0)
            cells.append(f"{n} ({_percent(n, tally.evaluated)})")
        table.rows.append([f"{info(code).display} ({code})", *cells])
    return table


def differing_table(cohort: Cohort) -> Table:
    header = ["Patient"] + [f"{e.label}" for e in cohort.evaluations]
    shown = cohort.differing[:DIFFERING_SHOWN]
    table = Table(
        "Patients whose categories differ between rule sets",
        f"{len(cohort.differing)} of {cohort.evaluated} patient(s) met different categories under "
        + " and ".join(f"{e.label} ({dates(cohort.tallies[e])})" for e in cohort.evaluations)
        + ".",
        header,
        [[patient, *(", ".join(codes) or "none" for codes in categories)] for patient, categories in shown],
        numeric=False,
    )
    if len(cohort.differing) > len(shown):
        table.notes.append(f"The first {len(shown)} are listed; every patient's categories are in patients.csv.")
    return table


def groups(rows: Sequence[TherapyRow]) -> list[tuple[str, list[TherapyRow]]]:
    """All patients given the therapy, then each steroid-response group present (SDNS, SRNS ...)."""
    present = Counter(r.group for r in rows)
    out = [("All", list(rows))]
    out += [(g, [r for r in rows if r.group == g]) for g in GROUP_ORDER if present[g]]
    return out


def _values(rows: Sequence[TherapyRow], pick: Callable[[TherapyRow], float | None]) -> list[float]:
    return [v for v in (pick(r) for r in rows) if v is not None]


def _pairs(rows: Sequence[TherapyRow], before: str, during: str) -> list[tuple[float, float]]:
    out = []
    for r in rows:
        a, b = getattr(r, before), getattr(r, during)
        if a is not None and b is not None:
            out.append((a, b))
    return out


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """Every figure of one column of the therapy table, at full precision."""

    n: int
    age: Summary | None
    rate_before: Summary | None
    rate_during: Summary | None
    rate_test: PairedTest
    dose_before: Summary | None
    dose_during: Summary | None
    dose_test: PairedTest
    complete_remission: int
    kidney_failure: int
    state_known: int
    follow_up: Summary | None
    first_relapse: KaplanMeier | None
    before_regimens: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        def s(summary: Summary | None) -> Any:
            return None if summary is None else summary.as_json()

        return {
            "n": self.n,
            "age_at_start_years": s(self.age),
            "relapse_rate_per_year": {
                "before": s(self.rate_before),
                "during": s(self.rate_during),
                "wilcoxon": self.rate_test.as_json(),
            },
            "minimum_maintenance_prednisolone_mg_per_kg_alternate_days": {
                "before": s(self.dose_before),
                "during": s(self.dose_during),
                "wilcoxon": self.dose_test.as_json(),
            },
            "complete_remission_at_evaluation": self.complete_remission,
            "kidney_failure": self.kidney_failure,
            "state_known": self.state_known,
            "follow_up_months": s(self.follow_up),
            "first_relapse": None
            if self.first_relapse is None
            else self.first_relapse.as_json([d for _, d in HORIZONS]),
            "period_before": self.before_regimens,
        }


def figures(rows: Sequence[TherapyRow]) -> GroupFigures:
    """The figures of a group of patients given the therapy."""
    durations = [
        (r.first_relapse_days, bool(r.first_relapse_censored)) for r in rows if r.first_relapse_days is not None
    ]
    return GroupFigures(
        len(rows),
        summarise(_values(rows, lambda r: r.age_at_start)),
        summarise(_values(rows, lambda r: r.rate_before)),
        summarise(_values(rows, lambda r: r.rate_during)),
        paired_test(_pairs(rows, "rate_before", "rate_during")),
        summarise(_values(rows, lambda r: r.dose_before)),
        summarise(_values(rows, lambda r: r.dose_during)),
        paired_test(_pairs(rows, "dose_before", "dose_during")),
        sum(r.state == "complete-remission" for r in rows),
        sum(r.state == "kidney-failure" for r in rows),
        sum(r.state is not None for r in rows),
        summarise([r.follow_up_months for r in rows]),
        kaplan_meier(durations),
        dict(sorted(Counter((r.before or "no steroid-sparing therapy") for r in rows if r.before is not None).items())),
    )


def _mean_sd(summary: Summary | None, digits: int) -> str:
    if summary is None:
        return "no value"
    sd = "SD n/a (one value)" if summary.sd is None else f"{summary.sd:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {sd} (n = {summary.n})"


def _median_iqr(summary: Summary | None, digits: int) -> str:
    if summary is None:
        return "no value"
    return f"{summary.median:.{digits}f} [{summary.q1:.{digits}f}–{summary.q3:.{digits}f}] (n = {summary.n})"


def _test(test: PairedTest) -> str:
    if test.p is None:
        return f"{test.why_none}"
    return f"Wilcoxon signed-rank, {test.pairs} pairs: p = {test.p:.2g}"


def _percent(n: int, of: int) -> str:
    return f"{100 * n / of:.0f} %" if of else "–"


def therapy_table(cohort: Cohort, evaluation: Evaluation) -> tuple[Table, dict[str, GroupFigures]]:
    """The seed-004 table for the patients given the named therapy under one evaluation: one column per group."""
    tally = cohort.tallies[evaluation]
    columns = groups(tally.therapy)
    computed = {name: figures(rows) for name, rows in columns}
    therapy = cohort.therapy or ""
    table = Table(
        f"Patients given {therapy}: {evaluation.label}",
        f"{len(tally.therapy)} of {tally.evaluated} patients evaluated were given {therapy} by their evaluation date; "
        f"{rulesets(evaluation, tally)}; {dates(tally)}. 'Before' is the period before the first {therapy} period "
        "(the previous steroid-sparing therapy, or the 12 months before), 'during' is that period (start to stop or "
        "the evaluation date). Groups by steroid response: SRNS (srns-initial or srns-secondary met), else SDNS, "
        "else FRNS.",
        ["", *(f"{name} (n = {len(rows)})" for name, rows in columns)],
    )

    def row(label: str, cell: Callable[[GroupFigures], str]) -> None:
        table.rows.append([label, *(cell(computed[name]) for name, _ in columns)])

    row("Patients, n", lambda f: str(f.n))
    row("Age at start, years: mean ± SD", lambda f: _mean_sd(f.age, 1))
    row("Period before", lambda f: ", ".join(f"{k} ({v})" for k, v in f.before_regimens.items()) or "none")
    row("Relapse rate before, /year: mean ± SD", lambda f: _mean_sd(f.rate_before, 1))
    row("Relapse rate during, /year: mean ± SD", lambda f: _mean_sd(f.rate_during, 1))
    row("Relapse rate before, /year: median [IQR]", lambda f: _median_iqr(f.rate_before, 1))
    row("Relapse rate during, /year: median [IQR]", lambda f: _median_iqr(f.rate_during, 1))
    row("Relapse rate, before vs during", lambda f: _test(f.rate_test))
    dose = "Minimum maintenance prednisolone"
    row(f"{dose} before, mg/kg alternate days: mean ± SD", lambda f: _mean_sd(f.dose_before, 2))
    row(f"{dose} during, mg/kg alternate days: mean ± SD", lambda f: _mean_sd(f.dose_during, 2))
    row(f"{dose} before: median [IQR]", lambda f: _median_iqr(f.dose_before, 2))
    row(f"{dose} during: median [IQR]", lambda f: _median_iqr(f.dose_during, 2))
    row(f"{dose}, before vs during", lambda f: _test(f.dose_test))
    row(
        "Complete remission at the evaluation date, n (%)",
        lambda f: f"{f.complete_remission} of {f.state_known} ({_percent(f.complete_remission, f.state_known)})",
    )
    row("Kidney failure at the evaluation date, n", lambda f: f"{f.kidney_failure} of {f.state_known}")
    row("Follow-up from start, months: mean ± SD", lambda f: _mean_sd(f.follow_up, 1))
    row("Follow-up from start, months: median [IQR]", lambda f: _median_iqr(f.follow_up, 1))
    row(
        "First relapse after start: relapses, censored",
        lambda f: "no value" if f.first_relapse is None else f"{f.first_relapse.events}, {f.first_relapse.censored}",
    )
    for months, days in HORIZONS:
        row(f"Free of relapse at {months} months ({days} days), Kaplan–Meier", partial(_free_at, day=days))
    row("Median time to first relapse, days (Kaplan–Meier)", lambda f: _median_time(f.first_relapse))
    table.notes.append(
        "Mean ± SD: sample SD; median [IQR]: quartiles by linear interpolation (numpy). Paired test: "
        "scipy.stats.wilcoxon (two-sided) on the patients with both values. Kaplan–Meier: scipy.stats.ecdf on "
        "times from the start to the first relapse during the therapy, censored at the period's end."
    )
    return table, computed


def _free_at(f: GroupFigures, day: int) -> str:
    km = f.first_relapse
    if km is None:
        return "no value"
    estimate = km.at(day)
    if estimate is None:
        return f"not estimable: no patient followed {day} days (n = {km.n})"
    return f"{100 * estimate:.0f} % ({km.at_risk(day)} at risk; n = {km.n})"


def _median_time(km: KaplanMeier | None) -> str:
    if km is None:
        return "no value"
    median = km.median
    return f"not reached (n = {km.n})" if median is None else f"{median:.0f} (n = {km.n})"
