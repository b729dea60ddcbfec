"""Writing a report directory whole or not at all: report.md, report.html (self-contained: no script, no
external style sheet, figures as files beside it), figures/, patients.csv, measures.csv, the same two as
Parquet, and summary.json (every figure of the tables at full precision)."""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_ns.report.cohort import TherapyRow
from fhir_ns.report.figures import Figure
from fhir_ns.report.tables import Table

Block = Table | Figure | str  # a str is a section heading


@dataclass(slots=True)
class Document:
    title: str
    intro: list[str]
    blocks: list[Block] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)


def parquet(csv_path: Path, types: dict[str, str]) -> None:
    """The CSV file again as Parquet beside it (same name, .parquet), read and written in batches."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    arrow = {"string": pa.string(), "date": pa.date32(), "float": pa.float64(), "bool": pa.bool_()}
    schema = {name: arrow[kind] for name, kind in types.items()}
    options = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True, null_values=[""])
    reader = pacsv.open_csv(csv_path, convert_options=options)
    with pq.ParquetWriter(csv_path.with_suffix(".parquet"), reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


PATIENT_TYPES = {
    "patient": "string", "evaluation": "string", "ruleset": "string", "as_of": "date", "category": "string",
    "since": "date", "revisit_on": "date",
}  # fmt: skip
MEASURE_TYPES = {
    "patient": "string", "evaluation": "string", "ruleset": "string", "as_of": "date", "code": "string",
    "start": "date", "end": "date", "therapy": "string", "value": "string", "number": "float", "unit": "string",
    "censored": "bool", "evidence": "string", "reason": "string",
}  # fmt: skip


def numbered(doc: Document) -> Iterator[tuple[str, Block]]:
    """Each block with its heading: "Table 1. ...", "Figure 1. ..." (a section heading as it is)."""
    tables = figures = 0
    for block in doc.blocks:
        if isinstance(block, str):
            yield block, block
        elif isinstance(block, Table):
            tables += 1
            yield f"Table {tables}. {block.title}", block
        else:
            figures += 1
            yield f"Figure {figures}. {block.title}", block


def markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for paragraph in doc.intro:
        out += [paragraph, ""]
    for heading, block in numbered(doc):
        if isinstance(block, str):
            out += [f"## {block}", ""]
        elif isinstance(block, Table):
            out += [f"### {heading}", "", block.caption, ""]
            out.append("| " + " | ".join(_md(c) for c in block.header) + " |")
            align = "---:" if block.numeric else "---"
            out.append("|" + "|".join("---" if i == 0 else align for i in range(len(block.header))) + "|")
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            out.append("")
            for note in block.notes:
                out += [note, ""]
        else:
            out += [f"### {heading}", "", f"![{block.title}]({block.png})", ""]
            out += [f"{block.caption} (SVG: [{block.svg}]({block.svg}))", ""]
    for paragraph in doc.closing:
        out += [paragraph, ""]
    return "\n".join(out)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #111; line-height: 1.45; }
h1, h2, h3 { font-family: Helvetica, Arial, sans-serif; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
caption { caption-side: top; text-align: left; padding: 0.3em 0; font-style: italic; }
th, td { border-top: 1px solid #444; border-bottom: 1px solid #444; padding: 0.3em 0.7em; vertical-align: top; }
th { background: #eee; text-align: left; }
td:not(:first-child) { text-align: right; }
table.words td { text-align: left; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-style: italic; }
.note { font-size: 0.9em; }
"""


def page(doc: Document) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    out += [f"<p>{e(p)}</p>" for p in doc.intro]
    for heading, block in numbered(doc):
        if isinstance(block, str):
            out.append(f"<h2>{e(block)}</h2>")
        elif isinstance(block, Table):
            out.append(f"<h3>{e(heading)}</h3>")
            kind = "" if block.numeric else ' class="words"'
            out.append(f"<table{kind}><caption>{e(block.caption)}</caption>")
            out.append("<thead><tr>" + "".join(f'<th scope="col">{e(c)}</th>' for c in block.header) + "</tr></thead>")
            out.append("<tbody>")
            for row in block.rows:
                cells = [f'<th scope="row">{e(row[0])}</th>'] + [f"<td>{e(c)}</td>" for c in row[1:]]
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
            out += [f'<p class="note">{e(n)}</p>' for n in block.notes]
        else:
            out.append(f"<figure><h3>{e(heading)}</h3>")
            out.append(f'<img src="{e(block.png)}" alt="{e(block.title)}">')
            out.append(f'<figcaption>{e(block.caption)} (<a href="{e(block.svg)}">SVG</a>)</figcaption></figure>')
    out += [f'<p class="note">{e(p)}</p>' for p in doc.closing]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


THERAPY_COLUMNS = (
    "patient", "evaluation", "regimen", "group", "start", "as_of", "age_at_start", "before", "rate_before",
    "rate_during", "dose_before", "dose_during", "state", "follow_up_months", "first_relapse_days",
    "first_relapse_censored",
)  # fmt: skip


def therapy_csv(path: Path, rows: Iterable[tuple[str, TherapyRow]]) -> None:
    """therapy.csv: one row per patient given the therapy and evaluation, the values the therapy table is made of."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(THERAPY_COLUMNS)
        for evaluation, r in rows:
            values = (
                r.patient, evaluation, r.regimen, r.group, r.start, r.as_of, r.age_at_start, r.before, r.rate_before,
                r.rate_during, r.dose_before, r.dose_during, r.state, r.follow_up_months, r.first_relapse_days,
                r.first_relapse_censored,
            )  # fmt: skip
            writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in values])


def write_files(directory: Path, doc: Document, summary: dict[str, Any]) -> None:
    """report.md, report.html, summary.json, and the Parquet copies of the two CSV tables, in `directory`."""
    (directory / "report.md").write_text(markdown(doc), encoding="utf-8")
    (directory / "report.html").write_text(page(doc), encoding="utf-8")
    (directory / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    parquet(directory / "patients.csv", PATIENT_TYPES)
    parquet(directory / "measures.csv", MEASURE_TYPES)
