"""Every element of a resource with its location, its element path in the spec and its type.

One walk feeds layers 3 (bindings are keyed by element path: `Observation.status`,
`Timing.repeat.periodUnit`) and 4 (invariants are keyed by element path or type: `Reference`,
`Observation.referenceRange`). Types come from fhirpathpy's model of the version (path -> type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_ns.validate.issues import join
from fhir_ns.validate.spec import Spec

PRIMITIVE_PREFIX = "System."


@dataclass(frozen=True, slots=True)
class Node:
    """One element (or resource) in a resource."""

    path: str  # location relative to the walked resource: dosage[0].timing.repeat.periodUnit
    element: str  # element path in the spec: Timing.repeat.periodUnit, Observation.status
    type_path: str  # what fhirpathpy should take the node to be: Timing, Observation.referenceRange
    contexts: tuple[str, ...]  # invariant contexts: element path, type and its ancestors
    value: Any
    resource: dict[str, Any]  # the resource the element belongs to (%resource)
    root: dict[str, Any]  # the outermost resource (%rootResource; differs for contained resources)


def walk(resource: dict[str, Any], spec: Spec) -> list[Node]:
    """All nodes of a resource, the resource first; contained resources included, with their own type."""
    out: list[Node] = []
    _resource(resource, "", resource, spec, out)
    return out


def _resource(res: dict[str, Any], loc: str, root: dict[str, Any], spec: Spec, out: list[Node]) -> None:
    rtype = res.get("resourceType")
    if not isinstance(rtype, str):
        return
    out.append(Node(loc, rtype, rtype, tuple(spec.lineage(rtype)), res, res, root))
    _children(res, rtype, loc, res, root, spec, out)


def _children(
    obj: dict[str, Any],
    base: str,
    loc: str,
    resource: dict[str, Any],
    root: dict[str, Any],
    spec: Spec,
    out: list[Node],
) -> None:
    for key, value in obj.items():
        if key == "resourceType":
            continue
        if key.startswith("_"):  # a primitive's id and extensions
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    where = join(loc, f"{key}[{i}]" if isinstance(value, list) else key)
                    out.append(Node(where, "Element", "Element", ("Element",), item, resource, root))
                    _children(item, "Element", where, resource, root, spec, out)
            continue
        path = f"{base}.{key}"
        path = spec.defined_elsewhere.get(path, path)
        typ = spec.path_types.get(path)
        many = isinstance(value, list)
        for i, item in enumerate(value if many else [value]):
            where = join(loc, f"{key}[{i}]" if many else key)
            if typ == "Resource":
                if isinstance(item, dict):
                    # a Bundle entry's resource is its own root; a contained one shares its container's
                    _resource(item, where, root if key == "contained" else item, spec, out)
                continue
            if isinstance(item, dict):
                if typ is None or typ in ("BackboneElement", "Element"):
                    contexts = (path, "BackboneElement", "Element")
                    out.append(Node(where, path, path, contexts, item, resource, root))
                    _children(item, path, where, resource, root, spec, out)
                else:
                    out.append(Node(where, path, typ, tuple(spec.lineage(typ)), item, resource, root))
                    _children(item, typ, where, resource, root, spec, out)
            else:
                out.append(Node(where, path, typ or "", ("Element",), item, resource, root))
