"""CDS Hooks service: `fhir-ns serve`."""
