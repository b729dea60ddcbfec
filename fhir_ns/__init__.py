"""fhir-ns: nephrotic syndrome classification from FHIR data."""

__version__ = "0.1.0"
