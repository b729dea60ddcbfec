"""The timeline page a card links to: the picture of `fhir-ns explain --plot` and its text, for one patient.

The link's token (fhir_ns.serve.links) opens what the card was made from: the patient's facts as read in
that call (kept server-side, msgpack), its evaluation date and rule set. The page evaluates them again
with the same rules, so it shows exactly what the card said, and the URL carries no patient data.
"""

from __future__ import annotations

import base64
import html
from datetime import date
from typing import Any

import msgspec

from fhir_ns.pipeline import Config
from fhir_ns.rules import evaluate_with_timeline
from fhir_ns.timeline.model import PatientFacts

# the page loads nothing from anywhere: inline SVG and style only
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
}


def link_payload(facts: PatientFacts, as_of: date, ruleset_id: str | None) -> dict[str, Any]:
    """What a link keeps (server-side) to draw the page later."""
    packed = base64.b64encode(msgspec.msgpack.encode(facts)).decode("ascii")
    return {"facts": packed, "as_of": as_of.isoformat(), "ruleset": ruleset_id}


def render_page(payload: dict[str, Any], config: Config) -> str:
    """The HTML page of the figure and the explanation, for a link's payload."""
    from fhir_ns.plot import timeline_figure
    from fhir_ns.text import explanation

    facts = msgspec.msgpack.decode(base64.b64decode(payload["facts"]), type=PatientFacts)
    as_of = date.fromisoformat(payload["as_of"])
    result, timeline = evaluate_with_timeline(facts, config.rulesets, config.terminology, as_of, payload["ruleset"])
    figure = timeline_figure(timeline, result, fmt="svg").decode("utf-8")
    figure = figure[figure.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML
    ruleset = result.ruleset.ref if result.ruleset_applied else "no rule set applied"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>fhir-ns timeline</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #111; }}
figure {{ margin: 0; }} figure svg {{ max-width: 100%; height: auto; }}
pre {{ white-space: pre-wrap; font-size: 0.9em; background: #f6f6f6; padding: 1em; }}
</style></head>
<body>
<h1>Nephrotic syndrome timeline</h1>
<p id="ruleset">As of {as_of}; rule set {html.escape(ruleset)}. Decision support for a clinician: review before acting.</p>
<figure id="timeline">{figure}</figure>
<h2>Explanation</h2>
<pre id="explanation">{html.escape(explanation(timeline, result))}</pre>
</body></html>
"""


EXPIRED = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fhir-ns timeline</title></head>
<body><h1>This link has expired</h1><p>Timeline links are valid for a short time. Open the patient's chart again
to get a new card and link.</p></body></html>
"""
