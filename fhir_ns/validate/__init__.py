"""`fhir-ns validate`: layered validation of FHIR input and of fhir-ns output.

1 syntax, 2 structure (fhir.resources), 3 required bindings, 4 invariants (fhirpathpy), 5 the fhir-ns
input profile (the classifier's own reading), 6 the fhir-ns output profile. One module per layer;
`Validator` runs them over files, `EntryGate` puts layers 2-3 in front of the classifier for `convert`.
"""

from fhir_ns.validate.gate import EntryGate
from fhir_ns.validate.issues import LAYERS, Issue, Layer
from fhir_ns.validate.runner import FileReport, Located, Validation, Validator
from fhir_ns.validate.spec import VERSIONS, FhirVersion

__all__ = [
    "LAYERS",
    "VERSIONS",
    "EntryGate",
    "FhirVersion",
    "FileReport",
    "Issue",
    "Layer",
    "Located",
    "Validation",
    "Validator",
]
