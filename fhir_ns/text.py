"""Clinician-readable text of one patient: what the rules concluded (`classify`), and the timeline it rests on
(`explain`). Codes are spelled out; resource ids are never broken across lines."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from fhir_ns.catalogue import info
from fhir_ns.fhir.writer import V3_DISPLAY
from fhir_ns.rules.result import PatientResult
from fhir_ns.ruleset import unit_text
from fhir_ns.timeline.model import DrugExposure, Measurement
from fhir_ns.timeline.timeline import Timeline


def render(result: PatientResult) -> str:
    """A clinician-readable summary of one patient: codes spelled out, resource ids never broken across lines."""
    wrap = _wrapper("      ", "      ")
    ruleset = f"rule set {result.ruleset.ref}" if result.ruleset_applied else "no rule set"
    lines = [f"Patient {result.patient_id}  ({ruleset}, {result.ruleset_choice}; as of {result.as_of})"]
    lines.append("  Classification:")
    for c in result.classifications:
        lines.append(f"    {info(c.code).display} ({c.code})  since {c.since}")
        lines.extend(wrap.wrap(c.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(c.evidence)))
    lines.append("  Findings:" if result.findings else "  Findings: none")
    for f in result.findings:
        category = V3_DISPLAY.get(f.category, f.category).lower()
        lines.append(f"    {info(f.code).display} ({f.code})  since {f.since}")
        lines.extend(wrap.wrap(f"{f.severity} severity; {category}"))
        lines.extend(wrap.wrap(f.reason))
        lines.extend(wrap.wrap("evidence: " + ", ".join(f.evidence)))
    notes = _wrapper("  ", "    ")
    if result.incomplete_input:
        lines.extend(notes.wrap(result.incomplete_input))
    for note in result.notes:
        lines.extend(notes.wrap(f"note: {note}"))
    lines.append("  Decision support for a clinician: review before acting.")
    return "\n".join(lines) + "\n"


def _wrapper(first: str, rest: str) -> textwrap.TextWrapper:
    """Lines of at most 100 characters that break only between words (never inside a resource id)."""
    return textwrap.TextWrapper(
        width=100, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )


def explanation(timeline: Timeline, result: PatientResult) -> str:
    """`render` of the result, then the timeline facts it rests on (what `fhir-ns explain` prints)."""
    return render(result) + "\n" + timeline_text(timeline)


def timeline_text(tl: Timeline) -> str:
    """The facts of a timeline, by date, each with its source: episodes (onset, remission, relapse),
    proteinuria judged against the rule set, serum albumin, creatinine and eGFR, drugs, CNI levels."""
    lines = [f"  Timeline (rule set {tl.ruleset.ref}; data up to {tl.as_of}):"]
    lines.append("    Episodes:" if tl.episodes else "    Episodes: none (no nephrotic-range proteinuria or diagnosis)")
    for n, episode in enumerate(tl.episodes, 1):
        start = f"{n}. {episode.start}  {'relapse' if episode.relapse else 'onset'}: {episode.start_text}"
        lines.extend(_EPISODE.wrap(start))
        lines.extend(_WRAP.wrap("evidence: " + ", ".join(dict.fromkeys(episode.start_sources))))
        if episode.remission is not None:
            r = episode.remission
            kind = "complete" if r.complete else "partial"
            lines.extend(_WRAP.wrap(f"{r.on}  {kind} remission: {r.text}"))
            lines.extend(_WRAP.wrap("evidence: " + ", ".join(dict.fromkeys(r.sources))))
    _section(lines, "Proteinuria", (f"{r.on}  {r.text}  {r.measurement.source}" for r in tl.readings))
    _section(lines, "Serum albumin", (_measured(tl, m) for m in tl.measurements.get("albumin", ())))
    _section(lines, "Serum creatinine", (_measured(tl, m) for m in tl.measurements.get("creatinine", ())))
    egfr = (
        f"{day}  {value:.0f} mL/min/1.73m2 ({equation})  {', '.join(sources)}"
        for day, value, sources, equation in tl.egfr_series()
    )
    _section(lines, "eGFR", egfr)
    _section(lines, "Drugs", (_exposure(tl, e) for e in tl.exposures))
    levels = []
    for drug, target in sorted(tl.ruleset.cni.target_levels.items()):
        for m in tl.measurements.get(f"{drug}-level", ()):
            band = f"target {target.low:g}-{target.high:g} {target.unit}"
            levels.append(f"{m.on}  {tl.terminology.drug_name(drug)} trough {tl.show(m)} ({band})  {m.source}")
    if levels:
        _section(lines, "CNI troughs", sorted(levels))
    return "\n".join(lines) + "\n"


def _section(lines: list[str], title: str, entries: Iterable[str]) -> None:
    """A titled list of dated entries; 'none on record' when empty."""
    body = [line for entry in entries for line in _ENTRY.wrap(entry)]
    lines.append(f"    {title}:" if body else f"    {title}: none on record")
    lines.extend(body)


def _measured(tl: Timeline, m: Measurement) -> str:
    return f"{m.on}  {tl.show(m)}  {m.source}"


def exposure_words(tl: Timeline, e: DrugExposure) -> str:
    """A drug exposure's regimen in words: "60 mg/m2/day, alternate days", "IV pulse 500 mg", "dose unknown"."""
    if e.daily_dose is None:
        return f"dose unknown ({e.dose_unknown})" if e.dose_unknown else "no dose recorded"
    basis = unit_text(f"{e.dose_basis}/d")
    dose = f"{e.daily_dose:g}" + (f"-{e.daily_dose_high:g}" if e.dose_range else "")
    if e.single_administration:
        return f"{'IV pulse' if e.route == 'iv' else 'single dose'} {dose} {unit_text(e.dose_basis)}"
    words = f"{dose} {basis}"
    if e.alternate_day:  # the exposure keeps the mean per day: half of each alternate-day dose
        words += f" (mean of {2 * e.daily_dose:g} {unit_text(e.dose_basis)} on alternate days)"
    if e.route == "iv":
        words += ", IV"
    return words


def _exposure(tl: Timeline, e: DrugExposure) -> str:
    until = "" if e.single_administration else f" to {e.end}" if e.end is not None else " onwards"
    return f"{e.start}{until}  {tl.terminology.drug_name(e.drug)}: {exposure_words(tl, e)}  {e.source}"


_EPISODE = _wrapper("      ", "         ")
_WRAP = _wrapper("         ", "         ")
_ENTRY = _wrapper("      ", "          ")
