"""The report's figures (matplotlib, Agg backend), each as PNG and SVG, readable in black and white: patients
told apart by marker shape, rule sets by line style and hatching, never by colour alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402

from fhir_ns.report.cohort import Cohort  # noqa: E402
from fhir_ns.report.stats import KaplanMeier  # noqa: E402
from fhir_ns.report.tables import dates  # noqa: E402

MARKERS = {"SDNS": "o", "SRNS": "s", "FRNS": "^", "other": "D"}
LINES = ("-", "--", ":", "-.")
HATCHES = ("", "///", "...", "xxx", "\\\\\\")
GREYS = ("white", "0.75", "0.5", "0.9", "0.3")


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure written as `name`.png and `name`.svg in the figures directory."""

    name: str
    title: str
    caption: str

    @property
    def png(self) -> str:
        return f"figures/{self.name}.png"

    @property
    def svg(self) -> str:
        return f"figures/{self.name}.svg"


def _save(fig: MplFigure, directory: Path, figure: Figure) -> Figure:
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / f"{figure.name}.png", dpi=150, bbox_inches="tight")
    fig.savefig(directory / f"{figure.name}.svg", bbox_inches="tight")
    plt.close(fig)
    return figure


def category_counts(cohort: Cohort, directory: Path) -> Figure:
    """Patients per category, one bar per rule set (hatched apart)."""
    codes = sorted(set().union(*(t.categories for t in cohort.tallies.values())))
    evaluations = cohort.evaluations
    height = 0.8 / len(evaluations)
    fig, ax = plt.subplots(figsize=(8, 0.32 * max(len(codes), 3) * len(evaluations) ** 0.5 + 1.2))
    for i, e in enumerate(evaluations):
        counts = [cohort.tallies[e].categories.get(code, 0) for code in codes]
        positions = [k + (i - (len(evaluations) - 1) / 2) * height for k in range(len(codes))]
        ax.barh(
            positions,
            counts,
            height=height,
            color=GREYS[i % len(GREYS)],
            hatch=HATCHES[i % len(HATCHES)],
            edgecolor="black",
            label=f"{e.label} (N = {cohort.tallies[e].evaluated})",
        )
    ax.set_yticks(range(len(codes)), codes)
    ax.invert_yaxis()
    ax.set_xlabel("patients who met the category")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(evaluations), 2), frameon=False)
    ax.grid(axis="x", color="0.85")
    ax.set_axisbelow(True)
    fig.tight_layout()
    when = "; ".join(f"{e.label} {dates(cohort.tallies[e])}" for e in evaluations)
    return _save(
        fig,
        directory,
        Figure("categories", "Patients per category", f"Patients who met each category, per rule set ({when})."),
    )


def paired_rates(cohort: Cohort, directory: Path) -> Figure:
    """Each patient's relapse rate before and during the therapy, one panel per rule set."""
    evaluations = cohort.evaluations
    fig, axes = plt.subplots(1, len(evaluations), figsize=(4.2 * len(evaluations), 4.4), squeeze=False, sharey=True)
    for ax, e in zip(axes[0], evaluations, strict=True):
        rows = [r for r in cohort.tallies[e].therapy if r.rate_before is not None and r.rate_during is not None]
        for group in sorted({r.group for r in rows}):
            mine = [r for r in rows if r.group == group]
            for r in mine:
                ax.plot([0, 1], [r.rate_before, r.rate_during], color="0.55", linewidth=0.8, zorder=1)
            ax.scatter(
                [0] * len(mine) + [1] * len(mine),
                [r.rate_before for r in mine] + [r.rate_during for r in mine],
                marker=MARKERS.get(group, "D"),
                facecolor="white" if group == "SRNS" else "black",
                edgecolor="black",
                zorder=2,
                label=f"{group} (n = {len(mine)})",
            )
        if rows:
            means = [
                sum(r.rate_before or 0 for r in rows) / len(rows),
                sum(r.rate_during or 0 for r in rows) / len(rows),
            ]
            ax.plot([0, 1], means, color="black", linewidth=2.5, linestyle="--", label="mean", zorder=3)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xticks([0, 1], ["before", f"during\n{cohort.therapy}"])
        ax.set_xlim(-0.4, 1.4)
        ax.set_title(f"{e.label}\n{len(rows)} pairs, {dates(cohort.tallies[e])}", fontsize=9)
        ax.grid(axis="y", color="0.85")
    axes[0][0].set_ylabel("relapses per year")
    fig.tight_layout()
    return _save(
        fig,
        directory,
        Figure(
            "relapse-rate-paired",
            f"Relapse rate before and during {cohort.therapy}",
            "Each line is one patient (filled circles SDNS, open squares SRNS); the dashed line joins the means.",
        ),
    )


def first_relapse(cohort: Cohort, curves: Sequence[tuple[str, KaplanMeier | None]], directory: Path) -> Figure:
    """Kaplan-Meier curves of the time to the first relapse after the start, one line style per rule set."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i, (label, km) in enumerate(curves):
        if km is None:
            continue
        days = [0.0, *km.days]
        free = [1.0, *km.free]
        ax.step(days, free, where="post", color="black", linestyle=LINES[i % len(LINES)], label=f"{label} (n = {km.n})")
        ticks = [(d, f) for d in km.censored_days if (f := km.at(d)) is not None]
        ax.plot([d for d, _ in ticks], [f for _, f in ticks], "|", color="black", markersize=10)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"days from the start of {cohort.therapy}")
    ax.set_ylabel("free of relapse (Kaplan–Meier)")
    ax.grid(color="0.85")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _save(
        fig,
        directory,
        Figure(
            "first-relapse-km",
            f"Time to first relapse after the start of {cohort.therapy}",
            "Kaplan–Meier estimate; a tick marks a patient censored (no relapse by the end of the period). "
            + "; ".join(f"{e.label} {dates(cohort.tallies[e])}" for e in cohort.evaluations)
            + ".",
        ),
    )
