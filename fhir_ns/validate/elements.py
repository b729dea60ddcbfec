"""Every element of a resource with its location, its element path in the spec and its type.

One walk feeds layers 3 (bindings are keyed by element path: `Observation.status`,
`Timing.repeat.periodUnit`) and 4 (invariants are keyed by element path or type: `Reference`,
`Observation.referenceRange`). Types come from fhirpathpy's model of the version (path -> type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fhir_ns.validate.issues import join
from fhir_ns.validate.spec import Spec

PRIMITIVE_PREFIX = "System."
# How many shapes of object (its place and keys) a pruned visit remembers the kept keys of, and the invariant
# layer which invariants can fail on: the few a bulk export's resources have, many times over; odd input beyond
# that is decided key by key, node by node, so memory stays bounded
SHAPES_REMEMBERED = 4096


@dataclass(slots=True)
class Node:
    """One element (or resource) in a resource. (Not frozen: the invariant layer makes one for every node where
    an invariant can fail, and a frozen dataclass costs twice as much to make; it is only read.)"""

    path: str  # location relative to the walked resource: dosage[0].timing.repeat.periodUnit
    element: str  # element path in the spec: Timing.repeat.periodUnit, Observation.status
    type_path: str  # what fhirpathpy should take the node to be: Timing, Observation.referenceRange
    contexts: tuple[str, ...]  # invariant contexts: element path, type and its ancestors
    value: Any
    resource: dict[str, Any]  # the resource the element belongs to (%resource)
    root: dict[str, Any]  # the outermost resource (%rootResource; differs for contained resources)


# What a visitor is handed for each node: path, element, type_path, contexts, value, resource, root (as in Node)
Visitor = Callable[[str, str, str, tuple[str, ...], Any, dict[str, Any], dict[str, Any]], None]


def visit_element(
    resource: dict[str, Any],
    key: str,
    index: int,
    item: Any,
    spec: Spec,
    on_node: Visitor,
    primitives: bool = True,
    prune: Prune | None = None,
) -> None:
    """Hand the nodes of `resource[key][index]`, given on its own (a Bundle's entry read one at a time, the
    resource holding the rest), to `on_node` as `visit` of the whole resource hands them."""
    walker = _Walker(element_paths(spec), on_node, primitives, prune)
    walker.children({key: [item]}, resource["resourceType"], "", resource, resource, index)


def walk(resource: dict[str, Any], spec: Spec) -> list[Node]:
    """All nodes of a resource, the resource first; contained resources included, with their own type."""
    out: list[Node] = []
    visit(resource, spec, lambda *node: out.append(Node(*node)))
    return out


# Whether the objects of an element (base, key), and everything in them, may be left out of a visit
Prune = Callable[[str, str], bool]


def visit(
    resource: dict[str, Any], spec: Spec, on_node: Visitor, primitives: bool = True, prune: Prune | None = None
) -> None:
    """Hand every node of a resource to `on_node` in the order of `walk`, without making Nodes of them;
    not the primitive values (strings, numbers, booleans; `_name` objects are elements) unless `primitives`,
    nor the objects of elements that `prune` says may be left out."""
    _Walker(element_paths(spec), on_node, primitives, prune).resource(resource, "", resource)


class ElementPaths:
    """Element paths and types under a base, worked out once per version (they are the same in every resource)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.children: dict[tuple[str, str], tuple[str, str | None, tuple[str, ...], str]] = {}
        self.lineages: dict[str, tuple[str, ...]] = {}
        self.skipped: dict[Prune, dict[tuple[str, str], bool]] = {}  # by prune: elements left out whatever they hold
        # by prune: the keys of an object (its base and keys) that are not left out, for the shapes seen first
        self.kept: dict[Prune, dict[tuple[str, tuple[str, ...]], list[str]]] = {}

    def child(self, base: str, key: str) -> tuple[str, str | None, tuple[str, ...], str]:
        """(element path, its type, the contexts and the base of its children when it is an object)."""
        found = self.children.get((base, key))
        if found is None:
            path = f"{base}.{key}"
            path = self.spec.defined_elsewhere.get(path, path)
            typ = self.spec.path_types.get(path)
            if typ is None or typ in ("BackboneElement", "Element"):
                found = (path, typ, (path, "BackboneElement", "Element"), path)
            else:
                found = (path, typ, self.lineage(typ), typ)
            self.children[(base, key)] = found
        return found

    def lineage(self, type_name: str) -> tuple[str, ...]:
        found = self.lineages.get(type_name)
        if found is None:
            found = self.lineages[type_name] = tuple(self.spec.lineage(type_name))
        return found


_PATHS: dict[str, ElementPaths] = {}


def element_paths(spec: Spec) -> ElementPaths:
    found = _PATHS.get(spec.version)
    if found is None or found.spec is not spec:
        found = _PATHS[spec.version] = ElementPaths(spec)
    return found


_ELEMENT = ("Element",)


class _Walker:
    def __init__(self, paths: ElementPaths, on_node: Visitor, primitives: bool, prune: Prune | None) -> None:
        self.paths = paths
        self.on_node = on_node
        self.primitives = primitives
        self.prune = prune
        # a visit of objects only, pruned: the elements left out whatever their values (pruned, or of a primitive
        # type, so holding no object that is not pruned), known from the element alone
        self.skipped = paths.skipped.setdefault(prune, {}) if prune is not None and not primitives else None
        self.kept = paths.kept.setdefault(prune, {}) if prune is not None and not primitives else None

    def resource(self, res: dict[str, Any], loc: str, root: dict[str, Any]) -> None:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            return
        self.on_node(loc, rtype, rtype, self.paths.lineage(rtype), res, res, root)
        self.children(res, rtype, loc, res, root)

    def children(
        self, obj: dict[str, Any], base: str, loc: str, resource: dict[str, Any], root: dict[str, Any], first: int = 0
    ) -> None:
        """The nodes under an object; `first`: the index its arrays' first elements have (not 0 only for the one
        element of an array given on its own, `visit_element`)."""
        on_node = self.on_node
        kept = self.kept
        keys: Iterable[str] = obj
        if kept is not None:
            shape = (base, tuple(obj))
            found = kept.get(shape)
            if found is None:
                found = [key for key in obj if not self._skipped(base, key)]
                if len(kept) < SHAPES_REMEMBERED:
                    kept[shape] = found
            keys = found
        for key in keys:
            value = obj[key]
            if key == "resourceType":
                continue
            if key.startswith("_"):  # a primitive's id and extensions
                many = isinstance(value, list)
                for i, item in enumerate(value if many else [value]):
                    if isinstance(item, dict):
                        where = join(loc, f"{key}[{i}]" if many else key)
                        on_node(where, "Element", "Element", _ELEMENT, item, resource, root)
                        self.children(item, "Element", where, resource, root)
                continue
            path, typ, contexts, child_base = self.paths.child(base, key)
            many = isinstance(value, list)
            objects = any(isinstance(item, dict) for item in value) if many else isinstance(value, dict)
            if objects and self.prune is not None and typ != "Resource" and self.prune(base, key):
                objects = False
            if not (objects or self.primitives or typ == "Resource"):
                continue  # nothing but primitive values here, or nothing wanted in the objects
            for i, item in enumerate(value if many else [value]):
                if typ == "Resource":
                    if isinstance(item, dict):
                        # a Bundle entry's resource is its own root; a contained one shares its container's
                        where = join(loc, f"{key}[{i + first}]" if many else key)
                        self.resource(item, where, root if key == "contained" else item)
                    continue
                if isinstance(item, dict):
                    if not objects:
                        continue
                    where = join(loc, f"{key}[{i + first}]" if many else key)
                    on_node(where, path, child_base, contexts, item, resource, root)
                    self.children(item, child_base, where, resource, root)
                elif self.primitives:
                    where = join(loc, f"{key}[{i + first}]" if many else key)
                    on_node(where, path, typ or "", _ELEMENT, item, resource, root)

    def _skipped(self, base: str, key: str) -> bool:
        """`_left_out`, remembered by element."""
        assert self.skipped is not None
        skip = self.skipped.get((base, key))
        if skip is None:
            skip = self.skipped[(base, key)] = self._left_out(base, key)
        return skip

    def _left_out(self, base: str, key: str) -> bool:
        """Whether a visit of objects only leaves the element (base, key) out, whatever it holds."""
        if key == "resourceType" or key.startswith("_") or self.prune is None:
            return key == "resourceType"
        return self.paths.child(base, key)[1] != "Resource" and self.prune(base, key)
