#!/usr/bin/env python3
"""A seeded synthetic cohort shaped like seed 004 (Pediatr Nephrol 2011;26:1255), with its ground truth.

Children with steroid-dependent NS (SDNS) relapsing on cyclosporine, and children with cyclosporine-
resistant steroid-resistant NS (SRNS), all then given tacrolimus + mizoribine + prednisolone. Each child's
chart is written as FHIR R4 collection Bundles with the samples' own resource builders
(samples/build_samples.py: the project's real LOINC, SNOMED CT and RxNorm codes; mizoribine by name, as it
has no code), and the generator records what it wrote as the ground truth of every patient (therapy
dates, relapse dates, maintenance doses, weight, the state at the last visit), so that what `fhir-ns report`
computes can be held against it without fhir-ns taking part.

    python tools/synthetic_cohort.py OUT_DIR [--seed 4] [--sdns 9] [--srns 5]

writes OUT_DIR/bundles/<patient>.json, OUT_DIR/as-of.csv (each patient's last visit, for
`--as-of-file`) and OUT_DIR/truth.json.

Conventions the ground truth is stated in (RULES.md §9): a relapse is dated its first day of nephrotic
proteinuria (3 consecutive days of dipstick 3+) and ends in complete remission 10 days later; the relapse
rate of a period is relapses / (days of the period / 365.25), a period's days counted from its first day to
its last, both included; prednisolone doses are recorded from the cyclosporine start on, in mg per kg of
the child's weight (constant per child in this cohort: the children do not grow) on alternate days (a daily
dose counting double), and the minimum maintenance dose of a period is the lowest dose L such that the child
spent 60 consecutive days of it in complete remission on L or less.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the samples' builders are imported from the checkout
    sys.path.insert(0, str(ROOT))

from samples.build_samples import (  # noqa: E402
    SNOMED,
    Story,
    _coding,
    bsa,
    bundle,
    initial_course,
    per_m2,
)

THERAPY = "tacrolimus+mizoribine"
DAYS_PER_YEAR = 365.25
MIN_HELD_DAYS = 60  # RULES §9: the minimum maintenance dose is one held this long without relapse
RELAPSE_COURSE_DAYS = 41  # a relapse's days from its first to the last of its prednisolone course
RELAPSE_TO_REMISSION = 10  # days from a relapse to its complete remission
DIALYSIS = ("108241001", "Dialysis procedure")  # SNOMED CT, mappings/codes (kidney failure from its start)


@dataclass
class Stretch:
    """Prednisolone from `start` to `end` (both included): `mg` a dose, every day or on alternate days, and
    the dose as mg/kg on alternate days (a daily dose counts double, RULES §9)."""

    start: date
    end: date
    mg: float
    mg_per_kg: float

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass
class Truth:
    """What the generator wrote for one child: the facts every figure of the report is computed from."""

    patient: str
    group: str  # sdns | srns
    birth: date
    onset: date
    weight: float
    cyclosporine_start: date
    cyclosporine_end: date  # last day
    therapy_start: date  # tacrolimus + mizoribine
    therapy_end: date | None  # last day, None: still running at the evaluation date
    as_of: date  # the last visit: the evaluation date
    relapses: list[date] = field(default_factory=list)  # every relapse after any remission
    prednisolone: list[Stretch] = field(default_factory=list)  # from the cyclosporine start on
    state: str = "complete-remission"  # at the evaluation date (RULES §9)
    kidney_failure: date | None = None
    first_remission: date | None = None  # the first complete remission (None: never reached)

    def period(self, during: bool) -> tuple[date, date]:
        """(first day, last day) of the multidrug period (`during`) or of the cyclosporine period before it."""
        if during:
            return self.therapy_start, self.therapy_end or self.as_of
        return self.cyclosporine_start, self.cyclosporine_end

    def relapse_rate(self, during: bool) -> float:
        start, end = self.period(during)
        count = sum(start <= day <= end for day in self.relapses)
        return count / (((end - start).days + 1) / DAYS_PER_YEAR)

    def in_remission(self, day: date) -> bool:
        """In complete remission on `day`: from the first remission on, except from a relapse to its remission."""
        if self.first_remission is None or day < self.first_remission:
            return False
        return not any(r <= day < r + timedelta(days=RELAPSE_TO_REMISSION) for r in self.relapses)

    def dose(self, day: date) -> float:
        return sum(s.mg_per_kg for s in self.prednisolone if s.start <= day <= s.end)

    def minimum_dose(self, during: bool) -> float | None:
        """The lowest dose L such that the child spent at least 60 consecutive days of the period in complete
        remission on L or less (RULES §9: the lowest dose held 60 days without relapse), worked out day by day."""
        start, end = self.period(during)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        doses = [self.dose(d) if self.in_remission(d) else None for d in days]
        for level in sorted({d for d in doses if d is not None}):
            run = longest = 0
            for d in doses:
                run = run + 1 if d is not None and d <= level + 1e-9 else 0
                longest = max(longest, run)
            if longest >= MIN_HELD_DAYS:
                return level
        return None

    def first_relapse(self) -> tuple[int, bool]:
        """Days from the multidrug start to the first relapse during it, and whether that time is censored
        (no relapse: the days to the period's end)."""
        start, end = self.period(during=True)
        during = [day for day in self.relapses if start <= day <= end]
        if during:
            return (during[0] - start).days, False
        return (end - start).days, True

    @property
    def age_at_start(self) -> float:
        return (self.therapy_start - self.birth).days / DAYS_PER_YEAR

    @property
    def follow_up_months(self) -> float:
        return (self.as_of - self.therapy_start).days / (DAYS_PER_YEAR / 12)

    def as_json(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(asdict(self)))


def _relapse(s: Story, truth: Truth, day: int) -> int:
    """A relapse on day `day` (dipstick 3+ three days running), treated as the samples treat one (prednisolone
    60 mg/m2/day until 3 days after remission, then 40 mg/m2 on alternate days for 4 weeks), remission on
    day + 10 (UPCR 12); returns the last day of its prednisolone course."""
    s.dipsticks(day, ["3+", "3+", "3+"])
    s.labs(day + 2, upcr=380, albumin=24)
    remission = day + RELAPSE_TO_REMISSION
    daily = per_m2(60, s.height, s.weight, cap=60)
    alternate = per_m2(40, s.height, s.weight, cap=40)
    s.ordered("prednisolone", day + 3, remission + 2, daily, why=" (60 mg/m2/day) until remission for 3 days")
    s.ordered("prednisolone", remission + 3, remission + 30, alternate, every_days=2, why=" (40 mg/m2) for 4 weeks")
    s.labs(remission, upcr=12, albumin=33)
    truth.relapses.append(s.day(day))
    if s.day(day) >= truth.cyclosporine_start:
        truth.prednisolone.append(Stretch(s.day(day + 3), s.day(remission + 2), daily, 2 * daily / truth.weight))
        truth.prednisolone.append(
            Stretch(s.day(remission + 3), s.day(remission + 30), alternate, alternate / truth.weight)
        )
    return remission + 30


def _maintenance(s: Story, truth: Truth, first: int, last: int, mg: float) -> None:
    """Alternate-day prednisolone `mg` from day `first` to day `last`, both included."""
    if last < first:
        return
    s.taking("prednisolone", first, last, mg, every_days=2, why=" (maintenance, alternate days)")
    truth.prednisolone.append(Stretch(s.day(first), s.day(last), mg, mg / truth.weight))


def _visits(s: Story, first: int, last: int, busy: list[tuple[int, int]], upcr: float, albumin: float) -> None:
    """Clinic visits every 60 days (weight, height, UPCR, albumin, creatinine) outside the relapse windows."""
    for n in range(first, last + 1, 60):
        s.body(n, s.weight, s.height)
        if not any(a <= n <= b for a, b in busy):
            s.labs(n, upcr=upcr, albumin=albumin, creatinine=35)


def _relapse_days(rng: random.Random, first: int, last: int, count: int) -> list[int]:
    """`count` relapse days in the period from day `first` to `last`: the first at least 20 days in, each
    course over at least 5 days before the next and 30 days before the end, and no maintenance stretch
    between them within 3 days of the 60-day limit (so no figure hangs on how days are counted)."""
    free = last - first + 1 - count * RELAPSE_COURSE_DAYS
    least = [20] + [5] * (count - 1) + [30]  # the maintenance stretches around the relapses, in days
    if free - sum(least) >= 2 * MIN_HELD_DAYS:  # one stretch long enough to show the maintenance dose, if room
        least[rng.randrange(len(least))] = MIN_HELD_DAYS + 10
    extra = free - sum(least)
    if extra < 0:
        raise ValueError(f"cannot place {count} relapses in days {first}-{last}")
    for _ in range(1000):
        weights = [rng.random() for _ in least]
        gaps = [low + int(extra * w / sum(weights)) for low, w in zip(least, weights, strict=True)]
        gaps[-1] += free - sum(gaps)
        if all(abs(gap - MIN_HELD_DAYS) > 3 for gap in gaps):
            return [first + sum(gaps[: k + 1]) + k * RELAPSE_COURSE_DAYS for k in range(count)]
    raise ValueError(f"cannot place {count} relapses in days {first}-{last}")


def sdns_child(rng: random.Random, pid: str) -> tuple[Story, Truth]:
    """Steroid-dependent NS from early childhood, relapsing on cyclosporine, then multidrug therapy."""
    age = rng.uniform(7.0, 11.0)
    onset = date(2012, 1, 2) + timedelta(days=rng.randrange(900))
    born = onset - timedelta(days=round(age * DAYS_PER_YEAR))
    weight = round(2 * (age + 2.5) + 8, 1)  # the child's weight, kept throughout (this cohort does not grow)
    height = round(6 * (age + 2.5) + 77)
    c0 = 180 + rng.randrange(60)  # cyclosporine start (after the second relapse's course)
    years_on_csa = rng.uniform(1.5, 3.0)
    t0 = c0 + round(years_on_csa * DAYS_PER_YEAR)  # tacrolimus + mizoribine start
    follow_up = rng.randrange(400, 760)
    as_of_day = t0 + follow_up
    s = Story(
        "synthetic", pid, born=born.isoformat(), gender=rng.choice(["male", "female"]), given="Synthetic",
        family=pid, onset=onset.isoformat(), as_of_day=as_of_day, classifications=[],
        note="synthetic SDNS child relapsing on cyclosporine, then tacrolimus + mizoribine + prednisolone",
    )  # fmt: skip
    truth = Truth(pid, "sdns", born, onset, weight, s.day(c0), s.day(t0 - 1), s.day(t0), None, s.as_of)
    s.body(0, weight, height).labs(0, upcr=650, albumin=15, creatinine=28).dipstick(0, "4+")
    s.condition("childhood NS", 0, status="relapse")
    initial_course(s)
    s.labs(10, upcr=12, albumin=28).labs(42, upcr=9, albumin=36)
    truth.first_remission = s.day(10)
    s.condition("MCD", 60, note="Kidney biopsy: minimal change disease")
    # steroid dependence: two relapses each within 15 days of stopping prednisolone
    first_end = _relapse(s, truth, 90)
    second = first_end + 8
    _relapse(s, truth, second)
    assert second + RELAPSE_COURSE_DAYS <= c0, "the second relapse's course ends before cyclosporine"
    busy = [(90, 100), (second, second + 10)]
    dose = per_m2(75, s.height, s.weight, step=5)
    s.taking("cyclosporine", c0, t0 - 1, dose, per_day=2, why=f" ({2 * dose:g} mg/day in 2 doses)")
    before = min(1.0, max(0.25, rng.gauss(0.5, 0.2)))  # mg/kg on alternate days, as in the paper before
    during = min(before - 0.05, max(0.1, rng.gauss(0.3, 0.2)))
    _relapsing_period(rng, s, truth, c0, t0 - 1, rng.gauss(2.9, 1.5), _mg(before, weight), busy)
    tac = round(0.05 * weight, 1)
    s.ordered("tacrolimus", t0, None, tac, per_day=2, why=f" ({2 * tac:g} mg/day = 0.1 mg/kg/day in 2 doses)")
    s.taking("mizoribine", t0, None, 150, why=" (multidrug therapy)", text="Mizoribine (Bredinin) 50 mg tablet")
    _relapsing_period(rng, s, truth, t0, as_of_day, rng.gauss(0.4, 0.5), _mg(during, weight), busy)
    _visits(s, c0, as_of_day - 1, busy, upcr=10, albumin=40)
    s.body(as_of_day, weight, height).labs(as_of_day, upcr=8, albumin=41, creatinine=36)
    return s, truth


def _mg(per_kg: float, weight: float) -> float:
    """An alternate-day prednisolone dose as prescribed: mg/kg x weight, to the nearest 2.5 mg (at least 2.5)."""
    return max(2.5, round(per_kg * weight / 2.5) * 2.5)


def _relapsing_period(
    rng: random.Random,
    s: Story,
    truth: Truth,
    first: int,
    last: int,
    rate: float,
    mg: float,
    busy: list[tuple[int, int]],
) -> None:
    """Relapses at about `rate` a year from day `first` to `last` (both included), each treated, with
    alternate-day maintenance prednisolone `mg` in between (in remission at `last`)."""
    years = (last - first + 1) / DAYS_PER_YEAR
    room = (last - first + 1 - 45) // (RELAPSE_COURSE_DAYS + 5)
    count = max(0, min(round(max(rate, 0.0) * years), room))
    days = _relapse_days(rng, first, last, count) if count else []
    start = first
    for day in days:
        _maintenance(s, truth, start, day - 1, mg)
        start = _relapse(s, truth, day) + 1
        busy.append((day, day + 10))
    _maintenance(s, truth, start, last, mg)


def srns_child(rng: random.Random, pid: str, outcome: str) -> tuple[Story, Truth]:
    """Steroid-resistant NS, cyclosporine-resistant, then multidrug therapy ending in `outcome`:
    complete-remission (then maybe a relapse), partial-remission, or kidney-failure (dialysis)."""
    age = rng.uniform(3.0, 8.0)
    onset = date(2013, 1, 7) + timedelta(days=rng.randrange(700))
    born = onset - timedelta(days=round(age * DAYS_PER_YEAR))
    weight = round(2 * (age + 1) + 8, 1)
    height = round(6 * (age + 1) + 77)
    c0 = 42
    t0 = 270 + rng.randrange(180)
    follow_up = rng.randrange(420, 700)
    as_of_day = t0 + follow_up
    s = Story(
        "synthetic", pid, born=born.isoformat(), gender=rng.choice(["male", "female"]), given="Synthetic",
        family=pid, onset=onset.isoformat(), as_of_day=as_of_day, classifications=[],
        note=f"synthetic cyclosporine-resistant SRNS child, then tacrolimus + mizoribine + prednisolone: {outcome}",
    )  # fmt: skip
    truth = Truth(pid, "srns", born, onset, weight, s.day(c0), s.day(t0 - 1), s.day(t0), None, s.as_of, state=outcome)
    s.body(0, weight, height).labs(0, upcr=900, albumin=13, creatinine=30).dipstick(0, "4+")
    s.condition("childhood NS", 0)
    s.condition("FSGS", 35, note="Kidney biopsy: focal segmental glomerulosclerosis")
    daily = per_m2(60, s.height, s.weight, cap=60)
    s.taking("prednisolone", 0, 41, daily, why=f" (60 mg/m2/day, BSA {bsa(s.height, s.weight):.2f} m2)")
    s.labs(14, upcr=700, albumin=13).labs(28, upcr=620, albumin=14, creatinine=30)
    s.ordered("lisinopril", 30, None, 2.5, why=" (supportive: antiproteinuric)")
    dose = per_m2(85, s.height, s.weight, step=5)
    s.ordered("cyclosporine", c0, t0 - 1, dose, per_day=2, why=f" ({2 * dose:g} mg/day in 2 doses)")
    for n in range(56, t0, 28):
        s.labs(n, upcr=rng.randrange(380, 560), albumin=17)
    for n in range(40, t0, 60):
        s.body(n, weight, height)
    _maintenance(s, truth, c0, t0 - 1, _mg(min(1.0, max(0.3, rng.gauss(0.6, 0.15))), weight))
    tac = round(0.05 * weight, 1)
    stop = None
    if outcome == "kidney-failure":
        stop = t0 + rng.randrange(240, 360)
        truth.therapy_end = s.day(stop - 1)
        truth.kidney_failure = s.day(stop)
    s.ordered("tacrolimus", t0, None if stop is None else stop - 1, tac, per_day=2, why=f" ({2 * tac:g} mg/day)")
    s.taking(
        "mizoribine", t0, None if stop is None else stop - 1, 150, why=" (multidrug therapy)",
        text="Mizoribine (Bredinin) 50 mg tablet",
    )  # fmt: skip
    mg = _mg(min(0.6, max(0.1, rng.gauss(0.35, 0.15))), weight)
    for n in range(t0, as_of_day, 60):
        s.body(n, weight, height)
    if outcome == "complete-remission":
        remission = t0 + rng.randrange(60, 180)
        for n, upcr, albumin in ((t0 + 28, 300, 22), (remission - 28, 90, 30)):
            s.labs(n, upcr=upcr, albumin=albumin)
        s.labs(remission, upcr=14, albumin=35)
        truth.first_remission = s.day(remission)
        relapse = remission + rng.randrange(90, 200) if rng.random() < 0.5 else None
        if relapse is not None and relapse + RELAPSE_COURSE_DAYS + 70 < as_of_day:
            _maintenance(s, truth, t0, relapse - 1, mg)
            after = _relapse(s, truth, relapse) + 1
            _maintenance(s, truth, after, as_of_day, mg)
        else:
            _maintenance(s, truth, t0, as_of_day, mg)
        s.labs(as_of_day, upcr=9, albumin=40, creatinine=34)
    elif outcome == "partial-remission":
        _maintenance(s, truth, t0, as_of_day, mg)
        for n in range(t0 + 28, as_of_day, 56):
            s.labs(n, upcr=rng.randrange(90, 180), albumin=31)
        s.labs(as_of_day, upcr=120, albumin=32, creatinine=40)
    else:
        assert stop is not None
        _maintenance(s, truth, t0, as_of_day, mg)
        for i, n in enumerate(range(t0 + 28, stop, 56)):
            s.labs(n, upcr=600, albumin=18, creatinine=60 + 40 * i)
        s._new(
            "Procedure",
            status="in-progress",
            code={"coding": [_coding(SNOMED, *DIALYSIS)], "text": "Haemodialysis"},
            subject={"reference": f"Patient/{pid}"},
            performedPeriod={"start": s.at(stop, "09:00")},
        )
        s.labs(as_of_day, upcr=700, albumin=20, creatinine=520)
    return s, truth


SRNS_OUTCOMES = ["complete-remission", "partial-remission", "kidney-failure", "complete-remission", "partial-remission"]


def generate(seed: int = 4, sdns: int = 9, srns: int = 5) -> list[tuple[Story, Truth]]:
    """The cohort: `sdns` SDNS children then `srns` SRNS children, the same for the same seed."""
    rng = random.Random(seed)
    out = [sdns_child(rng, f"syn-sdns-{i + 1:03d}") for i in range(sdns)]
    out += [srns_child(rng, f"syn-srns-{i + 1:03d}", SRNS_OUTCOMES[i % len(SRNS_OUTCOMES)]) for i in range(srns)]
    return out


def write(directory: Path, seed: int = 4, sdns: int = 9, srns: int = 5) -> list[Truth]:
    """Write the cohort's Bundles, as-of.csv and truth.json into `directory`; the ground truth."""
    bundles = directory / "bundles"
    bundles.mkdir(parents=True, exist_ok=True)
    truths = []
    for story, truth in generate(seed, sdns, srns):
        data = bundle(story)
        data["id"] = f"synthetic-{story.pid}"
        (bundles / f"{story.pid}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        truths.append(truth)
    lines = ["patient,as_of"] + [f"{t.patient},{t.as_of.isoformat()}" for t in truths]
    (directory / "as-of.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "truth.json").write_bytes(orjson.dumps([t.as_json() for t in truths], option=orjson.OPT_INDENT_2))
    return truths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="synthetic_cohort", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--sdns", type=int, default=9, help="SDNS children (the paper: 9)")
    parser.add_argument("--srns", type=int, default=5, help="SRNS children (the paper: 5)")
    args = parser.parse_args(argv)
    truths = write(args.directory, args.seed, args.sdns, args.srns)
    print(f"{len(truths)} synthetic patients written to {args.directory}")


if __name__ == "__main__":
    main()
