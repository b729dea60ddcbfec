"""The CDS services fhir-ns offers, as its discovery endpoint lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_ns.serve.prefetch import templates

PATIENT_VIEW = "fhir-ns-patient-view"
ORDER_SELECT = "fhir-ns-order-select"
ORDER_SIGN = "fhir-ns-order-sign"


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    hook: str
    title: str
    description: str

    @property
    def orders(self) -> bool:
        """An order hook: cards only about the draft orders."""
        return self.hook in ("order-select", "order-sign")

    def discovery(self, page_size: int) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": templates(page_size),
        }


_ORDERS = (
    "Warns when the drug being ordered meets a safety finding of fhir-ns on the patient's record: a calcineurin "
    "inhibitor with a rising creatinine or an out-of-range last trough, cyclophosphamide past its cumulative limit "
    "with this order, a high-dose glucocorticoid with an active contraindication. Answers at once with no card "
    "when no such drug is ordered."
)
SERVICES = {
    s.id: s
    for s in (
        Service(
            PATIENT_VIEW,
            "patient-view",
            "Nephrotic syndrome: steroid and CNI response, safety findings",
            "Classifies the patient's nephrotic syndrome (steroid-sensitive, -dependent, -resistant, CNI response, "
            "multidrug resistance) under a named, versioned rule set, with one card per safety finding and a link to "
            "the timeline; no card for a patient with no nephrotic evidence.",
        ),
        Service(ORDER_SELECT, "order-select", "Nephrotic syndrome: order safety (on selection)", _ORDERS),
        Service(ORDER_SIGN, "order-sign", "Nephrotic syndrome: order safety (before signing)", _ORDERS),
    )
}
