"""Benchmarks. `python -m bench`: fhir-ns classify/convert against the JSON decode floor and the
fhir.resources path on generated cohorts (README, "Performance")."""
