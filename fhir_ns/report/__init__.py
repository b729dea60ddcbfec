"""`fhir-ns report`: a cohort report a researcher can publish from (seed 004's table as the model), built from
the per-patient measures of fhir_ns.rules, patient by patient, with the ecosystem's statistics and plots.

`cohort` gathers the small per-patient rows as the patients are evaluated (light: no scientific library);
`compose` then makes the tables (`tables`, `stats`: numpy, scipy), the figures (`figures`: matplotlib) and the
files (`write`: Markdown, HTML, CSV, Parquet with pyarrow), imported only then.
"""
