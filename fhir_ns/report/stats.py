"""The cohort statistics a report states, from the ecosystem's libraries: numpy for means, SDs and quartiles,
scipy for the Wilcoxon signed-rank test and the Kaplan-Meier estimate (scipy.stats.ecdf on censored data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# With fewer pairs the exact two-sided Wilcoxon signed-rank test cannot reach p < 0.05 (5 pairs: p >= 0.0625),
# so a p value would only say that the cohort is too small; the report says that instead.
MIN_PAIRS = 6


@dataclass(frozen=True, slots=True)
class Summary:
    """n values as mean ± SD (sample SD, n - 1) and median [first quartile, third quartile] (numpy's
    linear interpolation); SD is None for a single value."""

    n: int
    mean: float
    sd: float | None
    median: float
    q1: float
    q3: float

    def as_json(self) -> dict[str, float | int | None]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "median": self.median, "q1": self.q1, "q3": self.q3}


def summarise(values: Sequence[float]) -> Summary | None:
    """The summary of `values` (None when there are none)."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    sd = float(np.std(data, ddof=1)) if len(data) > 1 else None
    return Summary(len(data), float(np.mean(data)), sd, float(median), float(q1), float(q3))


@dataclass(frozen=True, slots=True)
class PairedTest:
    """Wilcoxon signed-rank test of paired values (two-sided, scipy's defaults): the pairs it had, and the
    p value or why there is none."""

    pairs: int
    statistic: float | None
    p: float | None
    why_none: str = ""

    def as_json(self) -> dict[str, float | int | str | None]:
        return {"pairs": self.pairs, "statistic": self.statistic, "p": self.p, "why_none": self.why_none or None}


def paired_test(pairs: Sequence[tuple[float, float]]) -> PairedTest:
    """The Wilcoxon signed-rank test of (before, during) pairs, with scipy.stats.wilcoxon; with fewer than
    MIN_PAIRS pairs, or no difference at all, no p value and the reason."""
    n = len(pairs)
    if n < MIN_PAIRS:
        return PairedTest(n, None, None, f"too few pairs for a test ({n}; at least {MIN_PAIRS} are needed)")
    before = np.asarray([a for a, _ in pairs], dtype=float)
    during = np.asarray([b for _, b in pairs], dtype=float)
    if np.all(before == during):
        return PairedTest(n, None, None, "every pair is equal: nothing to test")
    result = stats.wilcoxon(before, during)
    return PairedTest(n, float(result.statistic), float(result.pvalue))


@dataclass(frozen=True, slots=True)
class KaplanMeier:
    """The Kaplan-Meier estimate of the share still free of the event, over days from the start."""

    n: int
    events: int
    censored: int
    days: tuple[float, ...]  # the step times (events and censorings), ascending
    free: tuple[float, ...]  # the estimate just after each step time
    censored_days: tuple[float, ...]
    times: tuple[float, ...]  # every patient's time, event or censored, ascending

    def at(self, day: float) -> float | None:
        """The estimate on `day` (1 before the first step); None after the longest time observed, where the
        data say nothing."""
        if day > self.times[-1]:
            return None
        index = int(np.searchsorted(np.asarray(self.days), day, side="right")) - 1
        return 1.0 if index < 0 else self.free[index]

    def at_risk(self, day: float) -> int:
        """Patients still followed and free of the event on `day` (time >= day)."""
        return sum(1 for t in self.times if t >= day)

    @property
    def median(self) -> float | None:
        """The first day the estimate falls to 0.5 or below (None: not reached)."""
        return next((d for d, s in zip(self.days, self.free, strict=True) if s <= 0.5), None)

    def as_json(self, horizons: Sequence[int]) -> dict[str, object]:
        return {
            "n": self.n,
            "events": self.events,
            "censored": self.censored,
            "median_days": self.median,
            "free_at_days": {str(day): self.at(day) for day in horizons},
        }


def kaplan_meier(durations: Sequence[tuple[float, bool]]) -> KaplanMeier | None:
    """The Kaplan-Meier estimate from (days, censored) with scipy.stats.ecdf (None when there are none)."""
    if not durations:
        return None
    events = [float(d) for d, censored in durations if not censored]
    right = [float(d) for d, censored in durations if censored]
    sf = stats.ecdf(stats.CensoredData(uncensored=events, right=right)).sf
    return KaplanMeier(
        len(durations),
        len(events),
        len(right),
        tuple(float(q) for q in sf.quantiles),
        tuple(float(p) for p in sf.probabilities),
        tuple(sorted(right)),
        tuple(sorted(float(d) for d, _ in durations)),
    )
