"""Layer 3: required code bindings, which fhir.resources does not enforce (`Observation.status = "bogus"`).

The value sets are the spec's, vendored per version (`mappings/fhir/<VERSION>/valuesets.yaml`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ns.validate.elements import Node
from fhir_ns.validate.issues import Issue
from fhir_ns.validate.spec import Binding, Spec


def check_bindings(nodes: Sequence[Node], spec: Spec) -> list[Issue]:
    """A code outside its required value set is an error, with the allowed codes named."""
    issues: list[Issue] = []
    for node in nodes:
        binding = spec.bindings.get(node.element)
        if binding is None:
            continue
        message = _check(binding, node.value)
        if message:
            issues.append(Issue("error", "code-invalid", message, "binding", node.path))
    return issues


def _check(binding: Binding, value: Any) -> str | None:
    allowed = (
        ", ".join(sorted(binding.all_codes)) if len(binding.all_codes) <= 20 else f"{len(binding.all_codes)} codes"
    )
    where = f"the required value set {binding.name} ({binding.value_set})"
    if binding.kind == "code":
        if isinstance(value, str) and value not in binding.all_codes:
            return f"{value!r} is not in {where}; allowed: {allowed}"
        return None
    codings = [value] if binding.kind == "Coding" else (value.get("coding") if isinstance(value, dict) else None)
    codings = [c for c in codings or [] if isinstance(c, dict)]
    if any(c.get("code") in binding.codes.get(str(c.get("system")), ()) for c in codings):
        return None
    found = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings) or "no coding"
    return f"no coding from {where}: found {found}; allowed: {allowed}"
