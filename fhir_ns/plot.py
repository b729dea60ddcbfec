"""The timeline picture of one patient: proteinuria, albumin, kidney function, drugs and CNI troughs against
time, with the rule set's thresholds, the episodes and every classification and finding at its date.

It draws what the pipeline already derived (`Timeline`, `PatientResult`) and decides nothing itself. Readable in
black and white: series differ by line style, marker and hatch, never by colour alone. matplotlib's Agg
renderer, with no pyplot state, so it is safe in a server thread.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: before anything else of matplotlib is imported

from matplotlib import dates as mdates  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

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
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "hatch.linewidth": 0.6,
}
_WIDTH_IN = 12.0
_LEFT_IN, _RIGHT_IN = 0.9, 2.9  # room for the y labels, and for the legends right of the panels
_DASHES: tuple[Any, ...] = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P")
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

    `patient` and `result` are what `fhir_ns.pipeline.explain_patient(inputs, config, patient_id, as_of,
    ruleset_id)` returns for an INPUT file and a patient id (as a pair `(timeline, result)`); both come from one
    evaluation, so the figure shows exactly what the result rests on. `fmt` is "png" or "svg".
    """
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: use one of {', '.join(FORMATS)}")
    with matplotlib.rc_context(_STYLE):
        figure = _draw(patient, result)
        out = io.BytesIO()
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        figure.savefig(out, format=fmt, dpi=100, metadata=metadata)
    return out.getvalue()


def _draw(tl: Timeline, result: PatientResult) -> Figure:
    lanes = _drug_lanes(tl)
    cni_drugs = _cni_drugs(tl)
    events = _event_rows(tl, result)
    heights = [0.35 + 0.22 * max(1, len(events)), 0.35, 2.0, 0.9, 1.1, 1.3]
    heights += [1.1] * len(cni_drugs) + [0.9] * max(1, len(lanes))
    top_in, bottom_in = 0.75, 0.55
    total = sum(heights) + 0.12 * len(heights) + top_in + bottom_in
    figure = Figure(figsize=(_WIDTH_IN, total))
    axes = figure.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights, "hspace": 0.12})
    figure.subplots_adjust(
        left=_LEFT_IN / _WIDTH_IN, right=1 - _RIGHT_IN / _WIDTH_IN, top=1 - top_in / total, bottom=bottom_in / total
    )
    span = _span(tl, result)
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
        _note(drug_axes[0], "no drug on record")
    for ax in axes[2:]:
        _shade_active_disease(ax, tl)
        _mark_events(ax, result)
    low, high = span.pad()
    ax_kidney.set_xlim(_t(low), _t(high))
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes:
        ax.grid(axis="x", color="0.85", linewidth=0.5)
    figure.suptitle(_title(tl, result), x=_LEFT_IN / _WIDTH_IN, ha="left", fontsize=10)
    return figure


def _title(tl: Timeline, result: PatientResult) -> str:
    ruleset = (
        f"rule set {result.ruleset.id} version {result.ruleset.version}"
        if result.ruleset_applied
        else "no rule set could be chosen"
    )
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


def _event_rows(tl: Timeline, result: PatientResult) -> list[list[_Event]]:
    """Classifications and findings placed in rows so that no two labels overlap (a label is as wide as its text)."""
    events = [_Event(c.since, c.code, False) for c in result.classifications]
    events += [_Event(f.since, f.code, True) for f in result.findings]
    events.sort(key=lambda e: (e.on, e.finding, e.label))
    low, high = _span(tl, result).pad()
    days_per_inch = max(1, (high - low).days) / (_WIDTH_IN - _LEFT_IN - _RIGHT_IN)
    rows: list[list[_Event]] = []
    ends: list[float] = []
    for event in events:
        x = float((event.on - low).days)
        width = (len(event.label) + 3) * 0.075 * days_per_inch  # ~0.075 in per character at 8 pt
        for i, end in enumerate(ends):
            if x > end:
                rows[i].append(event)
                ends[i] = x + width
                break
        else:
            rows.append([event])
            ends.append(x + width)
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
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontstyle="italic" if event.finding else "normal",
                fontweight="normal" if event.finding else "bold",
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
    for n, episode in enumerate(tl.episodes):
        remission = episode.remission.on if episode.remission is not None else tl.as_of
        ax.axvspan(
            _t(episode.start), _t(remission), 0.15, 0.85, facecolor="0.8", edgecolor="black", hatch="////", lw=0.6
        )
        name = "relapse" if episode.relapse is not None else "onset"
        ax.annotate(name, (_t(episode.start), 0.5), xytext=(2, 0), textcoords="offset points",
                    va="center", fontsize=7, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "lw": 0})  # fmt: skip
        if episode.remission is not None:
            following = tl.episodes[n + 1].start if n + 1 < len(tl.episodes) else tl.as_of
            ax.axvspan(
                _t(remission), _t(following), 0.15, 0.85, facecolor="white", edgecolor="black", hatch="...", lw=0.6
            )
            kind = "CR" if episode.remission.complete else "PR"
            ax.annotate(kind, (_t(remission), 0.5), xytext=(2, 0), textcoords="offset points",
                        va="center", fontsize=7, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "lw": 0})  # fmt: skip
    handles = [
        Patch(facecolor="0.8", edgecolor="black", hatch="////"),
        Patch(facecolor="white", edgecolor="black", hatch="..."),
    ]
    _legend(ax, handles, ["active disease (onset or relapse)", "remission"])


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
        ax.set_yscale("log")
        handles.append(line)
        labels.append("UPCR")
        criteria = (
            (tl.ruleset.nephrotic.upcr, "--", "nephrotic"),
            (tl.ruleset.complete_remission.upcr, ":", "remission"),
        )
        _thresholds(ax, criteria, unit, handles, labels)
    else:
        _note(ax, "no UPCR data")
    _protein_24h(ax, tl, handles, labels)
    _legend(ax, handles, labels)


def _upcr_unit(tl: Timeline) -> str:
    """The unit most UPCR values are in (the rule set's first nephrotic UPCR unit when there is none)."""
    counted = Counter(m.unit for m in tl.measurements.get("upcr", []))
    if counted:
        return counted.most_common(1)[0][0]
    return tl.ruleset.nephrotic.upcr[0].unit if tl.ruleset.nephrotic.upcr else "mg/mmol"


def _protein_24h(ax: Axes, tl: Timeline, handles: list[Any], labels: list[str]) -> None:
    values = tl.measurements.get("protein-24h", [])
    if not values:
        labels_note = "no 24-h protein data"
        ax.text(0.995, 0.97, labels_note, transform=ax.transAxes, ha="right", va="top", fontsize=7, color="0.3")
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
        right.set_yscale("log")
        handles.append(line)
        labels.append("24-h protein")
        criteria = (
            (thresholds, (0, (6, 2, 1, 2)), "nephrotic 24-h"),
            (tl.ruleset.complete_remission.protein_24h, (0, (1, 3)), "remission 24-h"),
        )
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
    if egfr:
        right = ax.twinx()
        right.set_ylabel("eGFR (mL/min/1.73m²)")
        (line,) = right.plot([_t(d) for d, *_ in egfr], [v for _, v, *_ in egfr], "s--", color="black", markersize=4,
                             markerfacecolor="white", lw=1)  # fmt: skip
        equations = sorted({equation.removesuffix(", reported") for *_, equation in egfr})
        handles.append(line)
        labels.append(f"eGFR ({', '.join(equations)})")
        limit = tl.ruleset.ckd.egfr_below
        right.axhline(limit, color="black", linestyle=":", linewidth=0.9)
        handles.append(Line2D([], [], color="black", linestyle=":", linewidth=0.9))
        labels.append(f"CKD: eGFR < {limit:g}")
        right.set_ylim(bottom=0)
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
    """Each exposure's mean daily dose in mg/day as a step; alternate-day phases hatched, IV pulses as triangles
    at the top of the lane with their dose written beside them, unknown doses as an outlined bar."""
    ax.set_ylabel(f"{drug_class.replace('-', ' ')}\n(mg/day)")
    drugs = sorted({e.drug for e in exposures})
    style = {drug: (_DASHES[i % len(_DASHES)], _MARKERS[i % len(_MARKERS)]) for i, drug in enumerate(drugs)}
    course = [e for e in exposures if not e.single_administration]
    doses = {id(e): _mg_per_day(tl, e) for e in exposures}
    known = [doses[id(e)] for e in course if doses[id(e)] is not None]
    top = max((d for d in known if d is not None), default=1.0) * 1.35
    ax.set_ylim(0, top)
    handles: list[Any] = []
    labels: list[str] = []
    seen: set[str] = set()
    for e in course:
        dose = doses[id(e)]
        end = e.end if e.end is not None else tl.as_of
        line, _ = style[e.drug]
        name = tl.terminology.drug_name(e.drug)
        if dose is None:
            ax.axvspan(_t(e.start), _t(end), 0.05, 0.35, facecolor="white", edgecolor="black", hatch="xx", lw=0.6)
            if "unknown" not in seen:
                seen.add("unknown")
                handles.append(Patch(facecolor="white", edgecolor="black", hatch="xx"))
                labels.append("dose unknown")
            continue
        hatch = "\\\\\\\\" if e.alternate_day else None
        ax.fill_between([_t(e.start), _t(end)], [dose, dose], step="post", facecolor="0.75" if not e.alternate_day else "white",
                        edgecolor="black", hatch=hatch, linewidth=0)  # fmt: skip
        ax.plot([_t(e.start), _t(end)], [dose, dose], linestyle=line, color="black", lw=1.2)
        if e.drug not in seen:
            seen.add(e.drug)
            handles.append(Line2D([], [], linestyle=line, color="black", lw=1.2))
            labels.append(f"{name}, mg/day")
        if e.alternate_day and "alternate" not in seen:
            seen.add("alternate")
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="\\\\\\\\"))
            labels.append("alternate-day phase (mean per day)")
    for e in exposures:
        if not e.single_administration:
            continue
        _, marker = style[e.drug]
        dose = doses[id(e)]
        ax.plot([_t(e.start)], [top * 0.88], marker="v", color="black", markersize=6, clip_on=False)
        words = "IV" if e.route == "iv" else "single"
        text = f"{dose:g} mg" if dose is not None else "dose ?"
        ax.annotate(text, (_t(e.start), top * 0.88), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=6)  # fmt: skip
        key = f"pulse-{e.drug}-{words}"
        if key not in seen:
            seen.add(key)
            handles.append(Line2D([], [], marker="v", color="black", linestyle="none"))
            labels.append(f"{tl.terminology.drug_name(e.drug)} {words} pulse (dose beside)")
    _legend(ax, handles, labels)


def _mg_per_day(tl: Timeline, e: DrugExposure) -> float | None:
    """The exposure's mean daily dose in mg/day on its first day (the pipeline's own dose computation)."""
    dose = tl.daily_dose(e, e.start, "mg/d")
    return None if dose is None else dose.value


# -- pieces --------------------------------------------------------------------------------------------


def _thresholds(
    ax: Axes, criteria: Sequence[tuple[Sequence[Threshold], Any, str]], unit: str, handles: list[Any], labels: list[str]
) -> None:
    """For each (thresholds, line style, name): a line at the threshold in `unit`, if the rule set has one."""
    for thresholds, style, name in criteria:
        threshold = next((t for t in thresholds if t.unit == unit), None)
        if threshold is not None:
            words = f"{name} {_words(threshold)}"
            handles.append(_threshold_line(ax, threshold.value, words, style))
            labels.append(words)


def _threshold_line(ax: Axes, value: float, words: str, style: Any) -> Line2D:
    """A horizontal line at a rule set's threshold, its words written at its right end; its legend handle."""
    ax.axhline(value, color="black", linestyle=style, linewidth=0.9)
    ax.annotate(
        words,
        (1.0, value),
        xycoords=("axes fraction", "data"),
        xytext=(-3, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=6.5,
        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "lw": 0, "alpha": 0.8},
    )
    return Line2D([], [], color="black", linestyle=style, linewidth=0.9)


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
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.045, 1.0), frameon=False, borderaxespad=0)
