"""The timeline picture of one patient: proteinuria, albumin, kidney function, drugs and CNI troughs against
time, with the rule set's thresholds, the episodes and every classification and finding at its date.

It draws what the pipeline already derived (`Timeline`, `PatientResult`) and decides nothing itself. Readable in
black and white: series differ by line style, marker and hatch, never by colour alone. matplotlib's Agg
renderer, with no pyplot state, so it is safe in a server thread.
"""

from __future__ import annotations

import io
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from weakref import WeakKeyDictionary

import matplotlib

matplotlib.use("Agg")  # no display: before anything else of matplotlib is imported

from matplotlib import dates as mdates  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from fhir_ns.rules.result import PatientResult  # noqa: E402
from fhir_ns.ruleset import Threshold, unit_text  # noqa: E402
from fhir_ns.timeline.model import DrugExposure  # noqa: E402
from fhir_ns.timeline.timeline import Timeline  # noqa: E402

FORMATS = ("png", "svg")

# Drug classes in the order a nephrologist reads them; any other class follows, by name.
_CLASS_ORDER = ("glucocorticoid", "calcineurin-inhibitor", "antimetabolite", "alkylating-agent", "anti-cd20")
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text in an SVG: searchable, and labels can be checked
    "svg.hashsalt": "fhir-ns",  # the same figure gives the same SVG
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: the same figure on every machine
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "hatch.linewidth": 0.6,
}
_WIDTH_IN = 12.0
_DPI = 100
_LEFT_IN, _RIGHT_IN = 0.9, 2.9  # room for the y labels, and for the legends right of the panels
_DASHES: tuple[Any, ...] = ("-", "--", "-.", ":")
_OPS = {">=": "≥", "<=": "≤"}


@dataclass(frozen=True, slots=True)
class _Span:
    start: date
    end: date

    def pad(self) -> tuple[date, date]:
        margin = timedelta(days=max(3, (self.end - self.start).days // 40))
        return self.start - margin, self.end + margin


def timeline_figure(patient: Timeline, result: PatientResult, *, fmt: str = "svg") -> bytes:
    """The picture of one patient's timeline and result, as PNG or SVG bytes.

    `patient` and `result` come from one evaluation, so the figure shows exactly what the result rests on:
    for INPUT files and a patient id, `timeline, result = fhir_ns.pipeline.explain_patient(inputs, config,
    patient_id, as_of, ruleset_id)`; for facts already read (`PatientFacts`, e.g. from a CDS Hooks prefetch),
    `result, timeline = fhir_ns.rules.evaluate_with_timeline(facts, config.rulesets, config.terminology, as_of,
    ruleset_id)`. `fmt` is "png" or "svg" (ValueError otherwise).
    """
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: use one of {', '.join(FORMATS)}")
    with matplotlib.rc_context(_STYLE):
        figure = _draw(patient, result)
        out = io.BytesIO()
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        figure.savefig(out, format=fmt, dpi=_DPI, metadata=metadata)
    return out.getvalue()


def _draw(tl: Timeline, result: PatientResult) -> Figure:
    lanes = _drug_lanes(tl)
    cni_drugs = _cni_drugs(tl)
    events = _event_rows(tl, result)
    heights = [0.35 + 0.22 * max(1, len(events)), 0.6, 2.0, 0.9, 1.1, 1.3]
    heights += [1.1] * len(cni_drugs) + [0.9] * max(1, len(lanes))
    top_in, bottom_in = 0.75, 0.55
    total = sum(heights) + 0.12 * len(heights) + top_in + bottom_in
    figure = Figure(figsize=(_WIDTH_IN, total), dpi=_DPI)  # labels are placed in pixels at this dpi
    axes = figure.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights, "hspace": 0.12})
    figure.subplots_adjust(
        left=_LEFT_IN / _WIDTH_IN, right=1 - _RIGHT_IN / _WIDTH_IN, top=1 - top_in / total, bottom=bottom_in / total
    )
    low, high = _span(tl, result).pad()
    axes[0].set_xlim(_t(low), _t(high))  # shared: set first, so that labels can be spaced in days
    ax_events, ax_episodes, ax_protein, ax_dipstick, ax_albumin, ax_kidney = axes[:6]
    _events(ax_events, events)
    _episodes(ax_episodes, tl)
    _proteinuria(ax_protein, tl)
    _dipstick(ax_dipstick, tl)
    _albumin(ax_albumin, tl)
    _kidney(ax_kidney, tl)
    for ax, drug in zip(axes[6 : 6 + len(cni_drugs)], cni_drugs, strict=True):
        _troughs(ax, tl, drug)
    drug_axes = axes[6 + len(cni_drugs) :]
    if lanes:
        for ax, (drug_class, exposures) in zip(drug_axes, lanes, strict=True):
            _drug_lane(ax, tl, drug_class, exposures)
    else:
        drug_axes[0].set_ylabel("drugs")
        drug_axes[0].set_yticks([])
        _note(drug_axes[0], "no drug on record")
    for ax in axes[2:]:
        _shade_active_disease(ax, tl)
        _mark_events(ax, result)
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes:
        ax.grid(axis="x", color="0.85", linewidth=0.5)
    figure.suptitle(_title(result), x=_LEFT_IN / _WIDTH_IN, ha="left", fontsize=10)
    return figure


def _title(result: PatientResult) -> str:
    named = f"rule set {result.ruleset.id} version {result.ruleset.version}"
    ruleset = named if result.ruleset_applied else f"no rule set could be chosen (thresholds of the {named})"
    current = ", ".join(c.code for c in result.classifications) or "no classification"
    return f"Patient {result.patient_id} | {ruleset} | as of {result.as_of}\nclassifications: {current}"


def _span(tl: Timeline, result: PatientResult) -> _Span:
    """From the first fact drawn (or a month before the evaluation date when there is none) to the evaluation date."""
    days = [m.on for series in tl.measurements.values() for m in series] + [e.start for e in tl.exposures]
    days += [c.since for c in result.classifications] + [f.since for f in result.findings]
    days = [d for d in days if d <= tl.as_of]
    start = min(days, default=tl.as_of - timedelta(days=30))
    if (tl.as_of - start).days < 14:
        start = tl.as_of - timedelta(days=14)
    return _Span(start, tl.as_of)


# -- classifications and findings ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    on: date
    label: str
    finding: bool
    leftward: bool = False  # the label is written left of its mark (near the right end of the time axis)


def _event_rows(tl: Timeline, result: PatientResult) -> list[list[_Event]]:
    """Classifications and findings placed in rows so that no two labels overlap (a label is as wide as its text)."""
    events = [_Event(c.since, c.code, False) for c in result.classifications]
    events += [_Event(f.since, f.code, True) for f in result.findings]
    events.sort(key=lambda e: (e.on, e.finding, e.label))
    low, high = _span(tl, result).pad()
    days_per_inch = max(1, (high - low).days) / (_WIDTH_IN - _LEFT_IN - _RIGHT_IN)
    rows: list[list[_Event]] = []
    taken: list[list[tuple[float, float]]] = []
    for event in events:
        x = float((event.on - low).days)
        width = (len(event.label) + 3) * 0.075 * days_per_inch  # ~0.075 in per character at 8 pt
        if x + width > (high - low).days:
            event = _Event(event.on, event.label, event.finding, leftward=True)
        span = (x - width, x + 0.1 * width) if event.leftward else (x - 0.1 * width, x + width)
        for row, spans in zip(rows, taken, strict=True):
            if all(span[1] < a or b < span[0] for a, b in spans):
                row.append(event)
                spans.append(span)
                break
        else:
            rows.append([event])
            taken.append([span])
    return rows


def _events(ax: Axes, rows: list[list[_Event]]) -> None:
    ax.set_yticks([])
    ax.set_ylabel("events", rotation=0, ha="right", va="center")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if not rows:
        _note(ax, "no classification or finding")
        return
    ax.set_ylim(-0.6, len(rows) - 0.4)
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        for event in row:
            marker = "v" if event.finding else "D"
            ax.plot([_t(event.on)], [y], marker=marker, color="black", markersize=5, markerfacecolor="white")
            ax.annotate(
                event.label,
                (_t(event.on), y),
                xytext=(-5 if event.leftward else 5, 0),
                textcoords="offset points",
                ha="right" if event.leftward else "left",
                va="center",
                fontstyle="italic" if event.finding else "normal",
                fontweight="normal" if event.finding else "bold",
                gid=f"{'finding' if event.finding else 'classification'}-{event.label}-{event.on}",  # an SVG id
            )
    handles = [
        Line2D([], [], marker="D", color="black", markerfacecolor="white", linestyle="-", linewidth=0.8),
        Line2D([], [], marker="v", color="black", markerfacecolor="white", linestyle=":", linewidth=0.8),
    ]
    _legend(ax, handles, ["classification (bold), since", "finding (italic), since"])


def _mark_events(ax: Axes, result: PatientResult) -> None:
    """A vertical line at each classification's (solid) and finding's (dotted) since-date."""
    for c in result.classifications:
        ax.axvline(_t(c.since), color="0.45", linewidth=0.7, linestyle="-", zorder=0.5)
    for f in result.findings:
        ax.axvline(_t(f.since), color="0.3", linewidth=0.8, linestyle=":", zorder=0.5)


# -- episodes ------------------------------------------------------------------------------------------


def _episodes(ax: Axes, tl: Timeline) -> None:
    ax.set_yticks([])
    ax.set_ylabel("episodes", rotation=0, ha="right", va="center")
    ax.set_ylim(0, 1)
    if not tl.episodes:
        _note(ax, "no episode (no nephrotic-range proteinuria or diagnosis on record)")
        return
    labels = _Labels(ax, 1.0)
    for n, episode in enumerate(tl.episodes):
        remission = episode.remission.on if episode.remission is not None else tl.as_of
        ax.axvspan(_t(episode.start), _t(remission), 0.3, 0.7, facecolor="0.8", edgecolor="black", hatch="////", lw=0.6)
        labels.add(episode.start, 0.86, "relapse" if episode.relapse is not None else "onset", va="center")
        if episode.remission is not None:
            following = tl.episodes[n + 1].start if n + 1 < len(tl.episodes) else tl.as_of
            ax.axvspan(_t(remission), _t(following), 0.3, 0.7, facecolor="white", edgecolor="black", lw=0.6)
            kind = "complete remission" if episode.remission.complete else "partial remission"
            labels.add(remission, 0.14, kind, va="center")
    handles = [
        Patch(facecolor="0.8", edgecolor="black", hatch="////"),
        Patch(facecolor="white", edgecolor="black"),
    ]
    _legend(ax, handles, ["active disease (shaded grey below)", "remission"])


def _shade_active_disease(ax: Axes, tl: Timeline) -> None:
    for episode in tl.episodes:
        end = episode.remission.on if episode.remission is not None else tl.as_of
        ax.axvspan(_t(episode.start), _t(end), facecolor="0.93", edgecolor="none", zorder=0)


# -- proteinuria ---------------------------------------------------------------------------------------


def _proteinuria(ax: Axes, tl: Timeline) -> None:
    """UPCR on a log scale (left), 24-h protein (right, in the unit of the rule set's threshold)."""
    upcr = tl.measurements.get("upcr", [])
    unit = _upcr_unit(tl)
    handles: list[Any] = []
    labels: list[str] = []
    ax.set_ylabel(f"UPCR ({unit_text(unit)})")
    if upcr:
        conversions = tl.terminology.concepts["upcr"].family_conversions
        points = [
            (m.on, m.value * (1.0 if m.unit == unit else conversions.get((m.unit, unit), float("nan")))) for m in upcr
        ]
        (line,) = ax.plot([_t(d) for d, _ in points], [v for _, v in points], "o-", color="black", markersize=4, lw=1)
        handles.append(line)
        labels.append("UPCR")
        criteria = (
            (tl.ruleset.nephrotic.upcr, "--", "nephrotic"),
            (tl.ruleset.complete_remission.upcr, ":", "remission"),
        )
        _log_scale(ax, [v for _, v in points], _threshold_values(criteria, unit, conversions))
        _thresholds(ax, criteria, unit, handles, labels, conversions)
    else:
        _note(ax, "no UPCR data")
    _protein_24h(ax, tl, handles, labels)
    _legend(ax, handles, labels)


def _log_scale(ax: Axes, values: list[float], lines: list[tuple[float, str, Any]]) -> None:
    """A log axis wide enough for the values and the threshold lines, its ticks at 1, 2, 5 x 10^n in plain numbers."""
    shown = [v for v in values if v > 0] + [value for value, *_ in lines]
    ax.set_yscale("log")
    if shown:
        ax.set_ylim(min(shown) / 2, max(shown) * 2)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _upcr_unit(tl: Timeline) -> str:
    """The unit most UPCR values are in (the rule set's first nephrotic UPCR unit when there is none)."""
    counted = Counter(m.unit for m in tl.measurements.get("upcr", []))
    if counted:
        return counted.most_common(1)[0][0]
    return tl.ruleset.nephrotic.upcr[0].unit if tl.ruleset.nephrotic.upcr else "mg/mmol"


def _protein_24h(ax: Axes, tl: Timeline, handles: list[Any], labels: list[str]) -> None:
    values = tl.measurements.get("protein-24h", [])
    if not values:
        ax.text(
            0.995, 0.97, "no 24-h protein data", transform=ax.transAxes, ha="right", va="top", fontsize=7, color="0.3"
        )
        return
    thresholds = tl.ruleset.nephrotic.protein_24h
    unit = thresholds[0].unit if thresholds else "mg/d"
    points, missing = [], 0
    for m in values:
        size = tl.body_size(m.on)
        divisor = 1.0 if unit == "mg/d" else size.bsa_m2 if unit == "mg/m2/d" else size.weight_kg
        if divisor is None:
            missing += 1
        else:
            points.append((m.on, m.value / divisor))
    right = ax.twinx()
    right.set_ylabel(f"24-h protein ({unit_text(unit)})")
    if points:
        (line,) = right.plot([_t(d) for d, _ in points], [v for _, v in points], "s--", color="black", markersize=4,
                             markerfacecolor="white", lw=1)  # fmt: skip
        handles.append(line)
        labels.append("24-h protein")
        criteria = (
            (thresholds, (0, (6, 2, 1, 2)), "nephrotic 24-h"),
            (tl.ruleset.complete_remission.protein_24h, (0, (1, 3)), "remission 24-h"),
        )
        _log_scale(right, [v for _, v in points], _threshold_values(criteria, unit, {}))
        _thresholds(right, criteria, unit, handles, labels)
    if missing:
        note = f"{missing} 24-h value(s) not drawn: no body size to express them in {unit_text(unit)}"
        ax.text(0.995, 0.03, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.3")


def _dipstick(ax: Axes, tl: Timeline) -> None:
    grades = tl.terminology.dipstick_grades
    ax.set_ylabel("dipstick")
    ax.set_ylim(-0.5, len(grades) - 0.5)
    ax.set_yticks(range(len(grades)), grades, fontsize=6)
    values = tl.measurements.get("dipstick", [])
    if not values:
        _note(ax, "no dipstick data")
        return
    marks = ax.plot([_t(m.on) for m in values], [m.value for m in values], linestyle="none", marker="|", markersize=9,
                    markeredgewidth=1.5, color="black")  # fmt: skip
    handles: list[Any] = [marks[0]]
    labels = ["dipstick grade"]
    nephrotic, remission = tl.ruleset.nephrotic.dipstick, tl.ruleset.complete_remission.dipstick
    for criterion, style, name in ((nephrotic, "--", "nephrotic"), (remission, ":", "remission")):
        if criterion is not None:
            words = f"{name} {_OPS.get(criterion.op, criterion.op)} {criterion.grade}"
            handles.append(_threshold_line(ax, tl.terminology.grade_index(criterion.grade), words, style))
            labels.append(words)
    _legend(ax, handles, labels)


# -- albumin, kidney function --------------------------------------------------------------------------


def _albumin(ax: Axes, tl: Timeline) -> None:
    values = tl.measurements.get("albumin", [])
    ax.set_ylabel("albumin (g/L)")
    if not values:
        _note(ax, "no serum albumin data")
        return
    (line,) = ax.plot([_t(m.on) for m in values], [m.value for m in values], "o-", color="black", markersize=4, lw=1,
                      markerfacecolor="white")  # fmt: skip
    threshold = tl.ruleset.hypoalbuminaemia
    shown = [m.value for m in values] + [threshold.value]
    ax.set_ylim(max(0.0, min(shown) - 6), max(shown) + 6)
    handles: list[Any] = [line]
    labels = ["serum albumin"]
    _thresholds(ax, [([threshold], "--", "hypoalbuminaemia")], threshold.unit, handles, labels)
    _legend(ax, handles, labels)


def _kidney(ax: Axes, tl: Timeline) -> None:
    creatinine = tl.measurements.get("creatinine", [])
    egfr = tl.egfr_series()
    ax.set_ylabel("creatinine (µmol/L)")
    handles: list[Any] = []
    labels: list[str] = []
    if creatinine:
        (line,) = ax.plot([_t(m.on) for m in creatinine], [m.value for m in creatinine], "^-", color="black",
                          markersize=4, lw=1)  # fmt: skip
        handles.append(line)
        labels.append("serum creatinine")
        ax.set_ylim(0, max(m.value for m in creatinine) * 1.3)  # from zero: a small change does not look large
    if egfr:
        right = ax.twinx()
        right.set_ylabel("eGFR (mL/min/1.73m²)")
        (line,) = right.plot([_t(d) for d, *_ in egfr], [v for _, v, *_ in egfr], "s--", color="black", markersize=4,
                             markerfacecolor="white", lw=1)  # fmt: skip
        equations = sorted({equation.removesuffix(", reported") for *_, equation in egfr})
        handles.append(line)
        labels.append(f"eGFR ({', '.join(equations)})")
        limit = tl.ruleset.ckd.egfr_below
        right.set_ylim(0, max(limit, *(v for _, v, *_ in egfr)) * 1.3)
        handles.append(_threshold_line(right, limit, f"CKD: eGFR < {limit:g}", ":"))
        labels.append(f"CKD: eGFR < {limit:g}")
    if not creatinine and not egfr:
        _note(ax, "no creatinine or eGFR data")
        return
    if not egfr:
        ax.text(0.995, 0.97, "no eGFR (needs creatinine with height and age)", transform=ax.transAxes, ha="right",
                va="top", fontsize=7, color="0.3")  # fmt: skip
    _legend(ax, handles, labels)


# -- drugs ---------------------------------------------------------------------------------------------


def _cni_drugs(tl: Timeline) -> list[str]:
    """The CNIs with a target band that the patient took or had levels of."""
    targets = tl.ruleset.cni.target_levels
    taken = {e.drug for e in tl.of_class("calcineurin-inhibitor")}
    return sorted(d for d in targets if d in taken or tl.measurements.get(f"{d}-level"))


def _troughs(ax: Axes, tl: Timeline, drug: str) -> None:
    target = tl.ruleset.cni.target_levels[drug]
    name = tl.terminology.drug_name(drug)
    ax.set_ylabel(f"{name}\ntrough ({target.unit})")
    band = ax.axhspan(target.low, target.high, facecolor="white", edgecolor="0.3", hatch="\\\\\\", lw=0.5, zorder=0.6)
    handles: list[Any] = [band]
    labels = [f"{name} target {target.low:g}-{target.high:g} {target.unit}"]
    levels = tl.measurements.get(f"{drug}-level", [])
    if not levels:
        _note(ax, f"no {name} trough levels")
    else:
        inside = [m for m in levels if target.low <= m.value <= target.high]
        outside = [m for m in levels if not target.low <= m.value <= target.high]
        ax.plot([_t(m.on) for m in levels], [m.value for m in levels], "-", color="black", lw=0.8)
        if inside:
            ax.plot([_t(m.on) for m in inside], [m.value for m in inside], "o", color="black", markerfacecolor="white",
                    markersize=5)  # fmt: skip
        if outside:
            ax.plot([_t(m.on) for m in outside], [m.value for m in outside], "X", color="black", markersize=6)
        handles += [
            Line2D([], [], marker="o", color="black", markerfacecolor="white", linestyle="none"),
            Line2D([], [], marker="X", color="black", linestyle="none"),
        ]
        labels += ["trough in range", "trough out of range"]
        top = max(target.high, *(m.value for m in levels))
        ax.set_ylim(0, top * 1.2)
    _legend(ax, handles, labels)


def _drug_lanes(tl: Timeline) -> list[tuple[str, list[DrugExposure]]]:
    """One lane per drug class taken, in reading order."""
    by_class: dict[str, list[DrugExposure]] = {}
    for e in tl.exposures:
        by_class.setdefault(e.drug_class, []).append(e)
    rank = {name: i for i, name in enumerate(_CLASS_ORDER)}
    return sorted(by_class.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def _drug_lane(ax: Axes, tl: Timeline, drug_class: str, exposures: Sequence[DrugExposure]) -> None:
    """Each exposure's mean daily dose in mg/day as a step with its dose written at its start; alternate-day
    phases hatched, IV pulses as triangles at the top of the lane (with their dose), unknown doses as a crossed
    bar. Drugs of one class differ by line style."""
    ax.set_ylabel(f"{drug_class.replace('-', ' ')}\n(mg/day)")
    course = [e for e in exposures if not e.single_administration]
    style = {drug: _DASHES[i % len(_DASHES)] for i, drug in enumerate(sorted({e.drug for e in course}))}
    doses = {id(e): _mg_per_day(tl, e) for e in exposures}
    highs = {id(e): _mg_per_day(tl, e, high=True) for e in course if e.dose_range}
    known = [d for e in course for d in (doses[id(e)], highs.get(id(e))) if d is not None]
    top = max(known, default=1.0) * 1.45
    ax.set_ylim(0, top)
    legend = _Legend()
    placed = _Labels(ax, top)
    # the higher doses first, so that a lower dose taken at the same time is drawn over them and stays visible
    for e in sorted(course, key=lambda e: -(doses[id(e)] or 0.0)):
        dose = doses[id(e)]
        end = _t(e.end if e.end is not None else tl.as_of)
        if dose is None:
            ax.axvspan(_t(e.start), end, 0.05, 0.35, facecolor="white", edgecolor="black", hatch="xx", lw=0.6)
            legend.add("unknown", Patch(facecolor="white", edgecolor="black", hatch="xx"), "dose unknown")
            placed.add(e.start, top * 0.2, "dose ?")
            continue
        hatch = "\\\\\\\\" if e.alternate_day else None
        ax.fill_between([_t(e.start), end], [dose, dose], facecolor="white" if e.alternate_day else "0.75",
                        edgecolor="black", hatch=hatch, linewidth=0)  # fmt: skip
        ax.plot([_t(e.start), end], [dose, dose], linestyle=style[e.drug], color="black", lw=1.2)
        name = tl.terminology.drug_name(e.drug)
        legend.add(e.drug, Line2D([], [], linestyle=style[e.drug], color="black", lw=1.2), f"{name}, mg/day")
        words = f"{dose:g}"
        high = highs.get(id(e))
        if high is not None:
            ax.plot([_t(e.start), end], [high, high], linestyle=(0, (1, 2)), color="black", lw=0.8)
            legend.add(
                "range", Line2D([], [], linestyle=(0, (1, 2)), color="black", lw=0.8), "high end of a dose range"
            )
            words = f"{dose:g}-{high:g}"
        if e.alternate_day:
            legend.add("alternate", Patch(facecolor="white", edgecolor="black", hatch="\\\\\\\\"),
                       "alternate-day phase (mean per day)")  # fmt: skip
            words = f"{2 * dose:g} alt. days"
        placed.add(e.start, high or dose, words)
    for first, pulses in _pulse_groups(exposures):
        dose = doses[id(first)]
        route = "IV" if first.route == "iv" else "single-dose"
        ax.plot([_t(e.start) for e in pulses], [top * 0.9] * len(pulses), "v", color="black", markersize=5)
        amount = f"{dose:g} mg" if dose is not None else "dose ?"
        count = f"{len(pulses)} x " if len(pulses) > 1 else ""
        placed.add(pulses[-1].start, top * 0.9, f"{count}{amount}", dx=6, va="center")
        symbol = Line2D([], [], marker="v", color="black", linestyle="none")
        legend.add(f"pulse-{first.drug}", symbol, f"{tl.terminology.drug_name(first.drug)} {route} pulse")
    legend.draw(ax)


def _pulse_groups(exposures: Sequence[DrugExposure]) -> list[tuple[DrugExposure, list[DrugExposure]]]:
    """Single administrations of one drug and dose given within a week of each other, as one group each."""
    groups: list[tuple[DrugExposure, list[DrugExposure]]] = []
    for e in sorted((e for e in exposures if e.single_administration), key=lambda e: (e.drug, e.start)):
        if groups:
            first, pulses = groups[-1]
            same = first.drug == e.drug and first.daily_dose == e.daily_dose and first.dose_basis == e.dose_basis
            if same and (e.start - pulses[-1].start).days <= 7:
                pulses.append(e)
                continue
        groups.append((e, [e]))
    return groups


class _Legend:
    """A panel's legend entries, each kind once."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.handles: list[Any] = []
        self.labels: list[str] = []

    def add(self, key: str, handle: Any, label: str) -> None:
        if key not in self.keys:
            self.keys.add(key)
            self.handles.append(handle)
            self.labels.append(label)

    def draw(self, ax: Axes) -> None:
        _legend(ax, self.handles, self.labels)


class _Labels:
    """Small labels in a lane, each left out when it would overlap one already written."""

    def __init__(self, ax: Axes, top: float) -> None:
        self.ax = ax
        self.top = top
        low, high = ax.get_xlim()
        self.days_per_inch = (high - low) / (_WIDTH_IN - _LEFT_IN - _RIGHT_IN)
        self.boxes: list[tuple[float, float, float]] = []

    def add(self, day: date, y: float, text: str, dx: float = 1, va: str = "bottom") -> None:
        """`text` just right of `day` at height `y` (ending at the right edge when it would pass it)."""
        x, ha = _t(day), "left"
        width = len(text) * 0.055 * self.days_per_inch  # ~0.055 in per character at 6.5 pt
        x0 = x + dx / 72 * self.days_per_inch
        right = self.ax.get_xlim()[1]
        if x0 + width > right:
            x, dx, ha, x0 = right, -2, "right", right - width
        x1 = x0 + width
        if any(x0 < b1 and b0 < x1 and abs(y - by) < 0.22 * self.top for b0, b1, by in self.boxes):
            return
        self.boxes.append((x0, x1, y))
        self.ax.annotate(text, (x, y), xytext=(dx, 1 if va == "bottom" else 0), textcoords="offset points",
                         ha=ha, va=va, fontsize=6.5)  # fmt: skip


def _mg_per_day(tl: Timeline, e: DrugExposure, high: bool = False) -> float | None:
    """The exposure's mean daily dose in mg/day on its first day (the pipeline's own dose computation); the high
    end of a dose written as a range with `high`."""
    dose = tl.daily_dose(e, e.start, "mg/d", high=high)
    return None if dose is None else dose.value


# -- pieces --------------------------------------------------------------------------------------------


def _thresholds(
    ax: Axes,
    criteria: Sequence[tuple[Sequence[Threshold], Any, str]],
    unit: str,
    handles: list[Any],
    labels: list[str],
    conversions: Mapping[tuple[str, str], float] | None = None,
) -> None:
    """For each (thresholds, line style, name): a line at the threshold in `unit`, if the rule set has one, else
    at one in another unit that `conversions` turn the values into (as the rules compare them)."""
    for value, words, style in _threshold_values(criteria, unit, conversions or {}):
        handles.append(_threshold_line(ax, value, words, style))
        labels.append(words)


def _threshold_values(
    criteria: Sequence[tuple[Sequence[Threshold], Any, str]], unit: str, conversions: Mapping[tuple[str, str], float]
) -> list[tuple[float, str, Any]]:
    """(value in `unit`, words, line style) of each criterion that has a threshold in `unit` or one converted to."""
    out = []
    for thresholds, style, name in criteria:
        threshold = next((t for t in thresholds if t.unit == unit), None)
        if threshold is not None:
            out.append((threshold.value, f"{name} {_words(threshold)}", style))
            continue
        converted = next((t for t in thresholds if (unit, t.unit) in conversions), None)
        if converted is not None:  # a value in `unit` meets it when value x factor does
            value = converted.value / conversions[(unit, converted.unit)]
            op = _OPS.get(converted.op, converted.op)
            out.append((value, f"{name} {op} {value:.3g} {unit_text(unit)} ({_words(converted)})", style))
    return out


_LABEL_SPOTS = (  # (x in axes fraction, offset in points, ha) x (offset in points, va): right end first
    [(x, dx, ha, dy, va)
     for x, dx, ha in ((1.0, -3, "right"), (0.0, 3, "left"), (0.5, 0, "center"), (0.25, 0, "center"),
                       (0.75, 0, "center"))
     for dy, va in ((2, "bottom"), (-2, "top"))]
)  # fmt: skip


_LABEL_BOXES: WeakKeyDictionary[Any, list[tuple[float, float, float, float]]] = WeakKeyDictionary()


def _threshold_line(ax: Axes, value: float, words: str, style: Any) -> Line2D:
    """A horizontal line at a rule set's threshold, its words written along it where they hide the fewest data
    points and no other label of the panel; its legend handle. The panel's limits must be set first."""
    ax.axhline(value, color="black", linestyle=style, linewidth=0.9)
    px = ax.figure.dpi / 72
    width, height = (len(words) * 6.5 * 0.55 + 2) * px, 9 * px
    left, bottom, right, top = ax.bbox.extents
    line_y = ax.transData.transform((0, value))[1]
    panel = [other for other in ax.figure.axes if tuple(other.bbox.bounds) == tuple(ax.bbox.bounds)]
    points = [xy for other in panel for line in other.get_lines() if line.get_transform() == other.transData
              for xy in _along(line, other.transData.transform(line.get_xydata()))]  # fmt: skip
    boxes = _LABEL_BOXES.setdefault(ax.figure, [])  # the labels already written on the figure, in pixels

    def cost(spot: tuple[float, float, str, float, str]) -> tuple[int, int]:
        x, dx, ha, dy, va = spot
        x0 = left + x * (right - left) + dx * px - {"right": width, "left": 0.0, "center": width / 2}[ha]
        y0 = line_y + dy * px - (height if va == "top" else 0.0)
        if y0 < bottom or y0 + height > top:
            return 2, 0
        hidden = sum(1 for px_, py in points if x0 - 4 <= px_ <= x0 + width + 4 and y0 - 4 <= py <= y0 + height + 4)
        clash = any(x0 < b[2] and b[0] < x0 + width and y0 < b[3] and b[1] < y0 + height for b in boxes)
        return int(clash), hidden

    spot = min(_LABEL_SPOTS, key=cost)
    x, dx, ha, dy, va = spot
    x0 = left + x * (right - left) + dx * px - {"right": width, "left": 0.0, "center": width / 2}[ha]
    y0 = line_y + dy * px - (height if va == "top" else 0.0)
    ax.annotate(words, (x, value), xycoords=("axes fraction", "data"), xytext=(dx, dy),
                        textcoords="offset points", ha=ha, va=va, fontsize=6.5,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "lw": 0, "alpha": 0.8})  # fmt: skip
    boxes.append((x0, y0, x0 + width, y0 + height))
    return Line2D([], [], color="black", linestyle=style, linewidth=0.9)


def _along(line: Line2D, xy: Any) -> list[tuple[float, float]]:
    """A drawn line's points in pixels, and points every 6 pixels between them when they are joined."""
    out = [(float(x), float(y)) for x, y in xy]
    if line.get_linestyle() in ("None", "", " ", "none"):
        return out
    for (x0, y0), (x1, y1) in zip(out, out[1:], strict=False):
        steps = int(max(abs(x1 - x0), abs(y1 - y0)) // 6)
        out += [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps)]
    return out


def _words(threshold: Threshold) -> str:
    return f"{_OPS.get(threshold.op, threshold.op)} {threshold.value:g} {unit_text(threshold.unit)}"


def _t(day: date) -> float:
    """A day as matplotlib's date number (its typed interface takes numbers)."""
    return float(mdates.date2num(day))


def _note(ax: Axes, text: str) -> None:
    """What a panel says when it has nothing to draw."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.25",
            fontstyle="italic")  # fmt: skip


def _legend(ax: Axes, handles: list[Any], labels: list[str]) -> None:
    """The panel's legend right of it, long entries on two lines so that they stay inside the figure."""
    if handles:
        wrapped = ["\n".join(textwrap.wrap(label, 36, break_long_words=False)) for label in labels]
        ax.legend(handles, wrapped, loc="upper left", bbox_to_anchor=(1.075, 1.0), frameon=False, borderaxespad=0)
