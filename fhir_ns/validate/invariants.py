"""Layer 4: the FHIR invariants (ele-1, dom-2..6, obs-6, obs-7, bdl-*, ref-1 ...) evaluated with fhirpathpy.

The expressions are the spec's, as vendored data (`mappings/fhir/<VERSION>/invariants.yaml`), each
compiled once per version. fhirpathpy is a tree-walking interpreter (tens of microseconds per
evaluation, milliseconds for `entry.all(...)` over a Bundle), so two things keep the layer cheap
without changing a verdict:

- an invariant is skipped where its own expression shows it cannot fail: `contained.contained.empty()`
  is true when the element has no `contained`. Those guards are read off the expression's parse tree
  (`_vacuous_unless`), never written by hand, and a test checks that guarded and unguarded evaluation
  agree. ele-1 (`hasValue() or (children().count() > id.count())`) can only fail on an element with no
  value and no child but `id`, so only such elements are handed to it.
- the invariants met on every resource (ele-1, ref-1, dom-2/4/5/6, qty-3, bdl-*) have native code
  (`native.py`) keyed by their exact expression text; it gives fhirpathpy's verdict or defers to
  fhirpathpy, and a test compares the two on every input the project has.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhir_ns.fhir.problems import Severity
from fhir_ns.validate.elements import (
    SHAPES_REMEMBERED,
    Node,
    Prune,
    Visitor,
    element_paths,
    visit,
    visit_element,
)
from fhir_ns.validate.issues import Issue
from fhir_ns.validate.native import NATIVE, Defer, Model, Native, has_value, model
from fhir_ns.validate.spec import Invariant, Spec

OPTIONS: dict[str, Any] = {
    "userInvocationTable": {"hasValue": {"fn": has_value, "arity": {0: []}}},
    "traceFn": lambda *_: None,  # dom-3 traces; fhirpathpy would print to stdout
}
# Functions that turn an empty input into an empty output: a chain of them starting at an absent
# element stays empty.
_EMPTY_PRESERVING = {"where", "select", "trace", "ofType", "as", "first", "last", "tail", "distinct", "single"}
Alternatives = list[frozenset[str]]  # true whenever every element of any one set is absent
FAILURES_REMEMBERED = 64  # paths an invariant's failure issue is kept for (see CompiledInvariant.failures)


def compile_invariant(expression: str, fhirpath_model: str) -> Callable[..., list[Any]]:
    """Compile and dry-run an expression; raises what fhirpathpy cannot evaluate (e.g. htmlChecks())."""
    fn = fhirpath_compile(expression, models[fhirpath_model], OPTIONS)
    fn({"resourceType": "Basic"}, {"resource": {}, "rootResource": {}})
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class CompiledInvariant:
    invariant: Invariant
    evaluate: Callable[..., list[Any]]
    vacuous_unless: Alternatives | None  # None: always evaluate
    native: Native | None = None  # native code for this exact expression (native.py), or fhirpathpy only
    model: Model | None = None
    # the issue of its failure at a path, made once for each of the first FAILURES_REMEMBERED paths (an Issue is
    # immutable; dom-6 fails on the resource itself, path "", of every resource without narrative)
    failures: dict[str, Issue] = field(default_factory=dict, compare=False, repr=False)

    def failure(self, path: str) -> Issue:
        """The issue of this invariant failing at `path`."""
        issue = self.failures.get(path)
        if issue is None:
            issue = _failure(self.invariant, path)
            if len(self.failures) < FAILURES_REMEMBERED:
                self.failures[path] = issue
        return issue

    def holds_natively(self, node: Node) -> bool | None:
        """The native verdict (True: the invariant holds), or None where fhirpathpy must decide."""
        if self.native is None or self.model is None:
            return None
        try:
            return self.native(node, self.model)
        except Defer:
            return None

    def can_fail(self, value: Any, keys: str | None = None) -> bool:
        """False where the invariant cannot fail on this element's value (so it need not be evaluated);
        `keys`: the value's keys as `key_text` gives them, if the caller has them."""
        if self.invariant.context == "Element":  # nothing but (at most) an id
            return isinstance(value, dict) and (not value or (len(value) == 1 and "id" in value))
        if self.vacuous_unless is None or not isinstance(value, dict):
            return True
        if keys is None:
            keys = key_text(value)
        return all(any(_present(value, name, keys) for name in names) for names in self.vacuous_unless)


def key_text(obj: dict[str, Any]) -> str:
    """The keys of an object in one string, each after a NUL (for `_present`)."""
    return "\x00" + "\x00".join(obj)


def _present(obj: dict[str, Any], name: str, keys: str) -> bool:
    """`name`, `_name` or a `name[x]` (valueQuantity: a key going on with an upper-case letter) is in `obj`."""
    if name in obj or f"_{name}" in obj:
        return True
    needle = "\x00" + name
    at = keys.find(needle)
    while at >= 0:
        if keys[at + len(needle) : at + len(needle) + 1].isupper():
            return True
        at = keys.find(needle, at + 1)
    return False


class Compiled(dict[str, list[CompiledInvariant]]):
    """Compiled invariants by context, and the ones that apply to a node's contexts, in that order."""

    def __init__(self) -> None:
        super().__init__()
        self._applicable: dict[tuple[str, ...], list[CompiledInvariant]] = {}
        self._failable: dict[tuple[tuple[str, ...], tuple[str, ...] | None], list[CompiledInvariant]] = {}

    def applicable(self, contexts: tuple[str, ...]) -> list[CompiledInvariant]:
        rules = self._applicable.get(contexts)
        if rules is None:
            rules = self._applicable[contexts] = [rule for context in contexts for rule in self.get(context, ())]
        return rules

    def failable(self, contexts: tuple[str, ...], value: Any) -> list[CompiledInvariant]:
        """The applicable invariants that can fail on a node's value (`can_fail`), in order. Whether one can
        depends only on the keys of an object (and on nothing of another value), so the answer is remembered
        by (contexts, keys) for the objects of the first SHAPES_REMEMBERED shapes seen."""
        shape = (contexts, tuple(value) if type(value) is dict else None)
        rules = self._failable.get(shape)
        if rules is None:
            keys = key_text(value) if type(value) is dict else None
            rules = [rule for rule in self.applicable(contexts) if rule.can_fail(value, keys)]
            if len(self._failable) < SHAPES_REMEMBERED:
                self._failable[shape] = rules
        return rules


class _CompiledWhenNeeded:
    """A FHIRPath expression, compiled by fhirpathpy the first time it is evaluated: most invariants are decided
    natively (native.py) in all but odd cases, and compiling every invariant of a version up front took about
    0.4 s at each start of validate (and of each `--jobs` worker)."""

    __slots__ = ("expression", "fn", "model_name")

    def __init__(self, expression: str, model_name: str) -> None:
        self.expression = expression
        self.model_name = model_name
        self.fn: Callable[..., list[Any]] | None = None

    def compile(self) -> Callable[..., list[Any]]:
        if self.fn is None:
            self.fn = fhirpath_compile(self.expression, models[self.model_name], OPTIONS)
        return self.fn

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        return (self.fn or self.compile())(*args, **kwargs)


@cache
def compiled(spec_version: str, model_name: str, invariants: tuple[Invariant, ...]) -> Compiled:
    """Invariants by context, once per version (each expression compiled when first evaluated)."""
    out = Compiled()
    for inv in invariants:
        fn = _CompiledWhenNeeded(inv.expression, model_name)
        native = NATIVE.get((inv.key, inv.expression))
        rule = CompiledInvariant(inv, fn, _vacuous_unless(inv.expression), native, model(model_name))
        out.setdefault(inv.context, []).append(rule)
    return out


_BY_SPEC: dict[int, tuple[Spec, Compiled]] = {}


def for_spec(spec: Spec) -> Compiled:
    """The compiled invariants of a spec (`compiled`, without hashing every invariant on each call)."""
    found = _BY_SPEC.get(id(spec))
    if found is None or found[0] is not spec:
        found = _BY_SPEC[id(spec)] = (
            spec,
            compiled(spec.version, FHIRPATH_MODEL_NAME[spec.version], tuple(spec.invariants)),
        )
    return found[1]


def check_invariants(resource: dict[str, Any], spec: Spec, plain: bool = False, remembered: bool = True) -> list[Issue]:
    """Evaluate every invariant whose context is an element's path or type, at every element of the resource
    (`elements.visit`); a Node is made only where an invariant can fail. Primitive values are visited only if
    an invariant other than those of `Element` (which look at objects only, see `can_fail`) applies to them.

    `plain`: the caller knows that the resource has no extensions (no `extension`, `modifierExtension` or
    `_name` element) and no object that is empty or holds nothing but an id (`is_plain` says so of its JSON
    text), so `Element`'s invariants cannot fail anywhere; the elements where no other invariant can apply,
    in them or under them (Coding, Meta, most of a resource), are then not visited at all.
    `remembered`: as `_evaluator` takes it; the objects are then visited by `_ObjectVisit`, which remembers
    both by the shape of an object.
    """
    issues: list[Issue] = []
    if remembered:
        shaped = _object_visit(spec, plain)
        if shaped is not None:
            shaped.resource(resource, "", resource, issues)
            return issues
    on_node, primitives = _evaluator(spec, issues, remembered)
    visit(resource, spec, on_node, primitives, _pruner(spec).prune if plain else None)
    return issues


def check_element_invariants(
    resource: dict[str, Any], key: str, index: int, item: Any, spec: Spec, plain: bool = False
) -> list[Issue]:
    """`check_invariants` of the nodes of `resource[key][index]` given on its own (`elements.visit_element`):
    a Bundle's entry read one at a time; `plain` as `is_plain` says of the element's JSON text."""
    issues: list[Issue] = []
    on_node, primitives = _evaluator(spec, issues)
    visit_element(resource, key, index, item, spec, on_node, primitives, _pruner(spec).prune if plain else None)
    return issues


def _evaluator(spec: Spec, issues: list[Issue], remembered: bool = True) -> tuple[Visitor, bool]:
    """A visitor evaluating the invariants that can fail at each node into `issues`, and whether primitive
    values need visiting; `remembered`: which invariants can fail on a node taken from `Compiled.failable`'s
    memory of shapes (else decided afresh at each node: tests compare the two)."""
    by_context = for_spec(spec)
    primitives = any(rule.invariant.context != "Element" for rule in by_context.applicable(("Element",)))
    failable = by_context.failable if remembered else _failable(by_context)

    def on_node(
        path: str,
        element: str,
        type_path: str,
        contexts: tuple[str, ...],
        value: Any,
        res: dict[str, Any],
        root: dict[str, Any],
    ) -> None:
        rules = failable(contexts, value)
        if not rules:
            return
        node = Node(path, element, type_path, contexts, value, res, root)
        for rule in rules:
            issue = evaluate(rule, node)
            if issue:
                issues.append(issue)

    return on_node, primitives


def _failable(by_context: Compiled) -> Callable[[tuple[str, ...], Any], list[CompiledInvariant]]:
    """`Compiled.failable` decided afresh at each node."""

    def failable(contexts: tuple[str, ...], value: Any) -> list[CompiledInvariant]:
        keys = key_text(value) if type(value) is dict else None
        return [rule for rule in by_context.applicable(contexts) if rule.can_fail(value, keys)]

    return failable


class _Pruner:
    """Which elements hold no place where an invariant other than Element's applies, in any resource: read off
    the spec's element paths and types (what can be under an element), once per element."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rules = for_spec(spec)
        self.children: dict[str, set[str]] = {}
        for path in [*spec.path_types, *spec.defined_elsewhere]:
            steps = path.split(".")
            for depth in range(1, len(steps)):  # every step: `Timing.repeat` has no type of its own, yet is Timing's
                self.children.setdefault(".".join(steps[:depth]), set()).add(steps[depth])
        self.pruned: dict[tuple[str, str], bool] = {}

    def prune(self, base: str, key: str) -> bool:
        found = self.pruned.get((base, key))
        if found is None:
            found = self.pruned[(base, key)] = not self._reaches_rules(base, key)
        return found

    def _reaches_rules(self, base: str, key: str) -> bool:
        """Whether an object at (base, key), or anything under it, is a context of a rule other than Element's."""
        paths = element_paths(self.spec)
        seen: set[str] = set()
        todo = [(base, key)]
        while todo:
            parent, name = todo.pop()
            path, typ, contexts, child_base = paths.child(parent, name)
            if typ == "Resource" or any(r.invariant.context != "Element" for r in self.rules.applicable(contexts)):
                return True
            if child_base in seen or (typ is not None and (typ[0].islower() or typ.startswith("System."))):
                continue  # seen, or a primitive: nothing under it
            seen.add(child_base)
            todo.extend((child_base, child) for child in self.children.get(child_base, ()) if child not in _EXTENSIONS)
            if child_base not in self.children and typ is not None and "." not in child_base:
                return True  # a type whose elements the spec does not list: not known to be free of rules
        return False


_EXTENSIONS = ("extension", "modifierExtension")
_ID_ONLY = re.compile(rb'\{"id":"(?:[^"\\]|\\.)*"\}')


def is_plain(text: bytes) -> bool:
    """Whether a resource's JSON text, as orjson writes it, shows no extension (`extension`, `modifierExtension`,
    `_name`) and no object that is empty or holds nothing but an id: then it is `plain` for check_invariants.
    (The same text in a string only costs the pruning.)"""
    if b"{}" in text or (b"_" in text and b'"_' in text):  # (one byte is found faster than two)
        return False
    if b'xtension"' in text and (b'"extension"' in text or b'"modifierExtension"' in text):
        return False
    return b'{"id":' not in text or _ID_ONLY.search(text) is None


_PRUNERS: dict[int, tuple[Spec, _Pruner]] = {}


class _Step:
    """A place where the visit of objects meets objects: the node it makes of each (element path, type path,
    contexts), the base of their children, and what it has learned there of each shape (the object's keys)."""

    __slots__ = ("base", "contexts", "element", "shapes", "type_path")

    def __init__(self, element: str, type_path: str, contexts: tuple[str, ...], base: str) -> None:
        self.element = element
        self.type_path = type_path
        self.contexts = contexts
        self.base = base
        # keys -> (the invariants that can fail on the object, (key, step, how its items are met) of each key
        # whose objects are visited)
        self.shapes: dict[tuple[str, ...], tuple[list[CompiledInvariant], list[tuple[str, _Step, int]]]] = {}


# How the objects of a key are met: as elements, as resources sharing the root of the one holding them
# (contained), or as resources of their own (a Bundle's entries)
_ELEMENTS, _CONTAINED, _OWN_ROOT = 0, 1, 2


class _ObjectVisit:
    """`check_invariants` when only objects need visiting (no invariant but Element's applies to a primitive):
    the nodes `elements.visit` hands `_evaluator`'s visitor, in the same order, with the same verdicts. What
    `Compiled.failable` and the pruned visit's kept keys (`elements._Walker`) decide by the shape of an object is
    decided here by one look-up per object: its keys at its place (a `_Step`). At most SHAPES_REMEMBERED shapes
    are remembered; beyond that each object is decided afresh, the same way."""

    def __init__(self, spec: Spec, prune: Prune | None) -> None:
        self.paths = element_paths(spec)
        self.rules = for_spec(spec)
        self.prune = prune
        self.roots: dict[str, _Step] = {}
        self.steps: dict[tuple[str, str], tuple[_Step, int]] = {}
        self.remembered = 0

    def resource(self, res: dict[str, Any], loc: str, root: dict[str, Any], issues: list[Issue]) -> None:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            return
        step = self.roots.get(rtype)
        if step is None:
            step = self.roots[rtype] = _Step(rtype, rtype, self.paths.lineage(rtype), rtype)
        self.object(res, step, loc, res, root, issues)

    def object(
        self,
        obj: dict[str, Any],
        step: _Step,
        loc: str,
        resource: dict[str, Any],
        root: dict[str, Any],
        issues: list[Issue],
    ) -> None:
        """The node of one object at `loc`, then those under it."""
        keys = tuple(obj)
        shape = step.shapes.get(keys)
        if shape is None:
            shape = self._shape(step, obj, keys)
            if self.remembered < SHAPES_REMEMBERED:
                step.shapes[keys] = shape
                self.remembered += 1
        rules, children = shape
        if rules:
            node = Node(loc, step.element, step.type_path, step.contexts, obj, resource, root)
            for rule in rules:  # `evaluate`, written out: this runs at most nodes
                holds = rule.holds_natively(node)
                if holds is None:
                    issue = by_fhirpath(rule, node)
                    if issue:
                        issues.append(issue)
                elif not holds:
                    issues.append(rule.failure(loc))
        for key, child, meeting in children:
            value = obj[key]
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        where = f"{loc}.{key}[{i}]" if loc else f"{key}[{i}]"
                        if meeting == _ELEMENTS:
                            self.object(item, child, where, resource, root, issues)
                        else:
                            self.resource(item, where, root if meeting == _CONTAINED else item, issues)
            elif isinstance(value, dict):
                where = f"{loc}.{key}" if loc else key
                if meeting == _ELEMENTS:
                    self.object(value, child, where, resource, root, issues)
                else:
                    self.resource(value, where, root if meeting == _CONTAINED else value, issues)

    def _shape(
        self, step: _Step, obj: dict[str, Any], keys: tuple[str, ...]
    ) -> tuple[list[CompiledInvariant], list[tuple[str, _Step, int]]]:
        """What an object of these keys at this step needs: the invariants that can fail on it (`can_fail`), and
        the keys whose objects are visited (every key but resourceType, less those the pruning leaves out)."""
        text = key_text(obj)
        rules = [rule for rule in self.rules.applicable(step.contexts) if rule.can_fail(obj, text)]
        children = []
        for key in keys:
            if key == "resourceType":
                continue
            child, meeting = self._child(step.base, key)
            if (
                meeting == _ELEMENTS
                and self.prune is not None
                and not key.startswith("_")
                and self.prune(step.base, key)
            ):
                continue
            children.append((key, child, meeting))
        return rules, children

    def _child(self, base: str, key: str) -> tuple[_Step, int]:
        """The step of the objects of `key` under an object of `base`, and how they are met."""
        found = self.steps.get((base, key))
        if found is None:
            if key.startswith("_"):  # a primitive's id and extensions
                found = (_Step("Element", "Element", _ELEMENT_CONTEXTS, "Element"), _ELEMENTS)
            else:
                path, typ, contexts, child_base = self.paths.child(base, key)
                meeting = _ELEMENTS if typ != "Resource" else _CONTAINED if key == "contained" else _OWN_ROOT
                found = (_Step(path, child_base, contexts, child_base), meeting)
            self.steps[(base, key)] = found
        return found


_ELEMENT_CONTEXTS = ("Element",)
_VISITS: dict[tuple[int, bool], tuple[Spec, _ObjectVisit | None]] = {}


def _object_visit(spec: Spec, plain: bool) -> _ObjectVisit | None:
    """The visit of objects of a spec, pruned for a `plain` resource; None where primitives need visiting."""
    found = _VISITS.get((id(spec), plain))
    if found is None or found[0] is not spec:
        objects_only = not any(r.invariant.context != "Element" for r in for_spec(spec).applicable(("Element",)))
        shaped = _ObjectVisit(spec, _pruner(spec).prune if plain else None) if objects_only else None
        found = _VISITS[(id(spec), plain)] = (spec, shaped)
    return found[1]


def _pruner(spec: Spec) -> _Pruner:
    found = _PRUNERS.get(id(spec))
    if found is None or found[0] is not spec:
        found = _PRUNERS[id(spec)] = (spec, _Pruner(spec))
    return found[1]


FHIRPATH_MODEL_NAME = {"R4": "r4", "R4B": "r4", "R5": "r5"}


def evaluate(rule: CompiledInvariant, node: Node) -> Issue | None:
    """One invariant at one node: natively where it can, else with fhirpathpy."""
    native = rule.holds_natively(node)
    if native is not None:
        return None if native else rule.failure(node.path)
    return by_fhirpath(rule, node)


def by_fhirpath(rule: CompiledInvariant, node: Node) -> Issue | None:
    """One invariant at one node, evaluated by fhirpathpy."""
    inv = rule.invariant
    try:
        result = evaluate_fhirpath(rule, node)
    except Exception as exc:  # an expression fhirpathpy cannot evaluate on this input is said, not hidden
        reason = str(exc).split(", got [")[0][:120]
        return Issue(
            "information", "not-supported", f"{inv.key} not evaluated (fhirpathpy: {reason})", "invariant", node.path
        )
    # FHIR: the constraint holds when the expression is true; an empty result is not a failure.
    if result != [False]:
        return None
    return rule.failure(node.path)


def evaluate_fhirpath(rule: CompiledInvariant, node: Node) -> list[Any]:
    """The expression's value at `node` from fhirpathpy (raising what fhirpathpy raises)."""
    data = ResourceNode.create_node(node.value, node.type_path) if node.type_path else node.value
    return rule.evaluate(data, {"resource": node.resource, "rootResource": node.root, "context": node.value})


def _failure(inv: Invariant, path: str) -> Issue:
    severity: Severity = "information" if inv.best_practice else ("error" if inv.severity == "error" else "warning")
    return Issue(severity, "invariant", f"{inv.key}: {inv.human}", "invariant", path)


# -- guards read off the parse tree -------------------------------------------------------------------
def _vacuous_unless(expression: str) -> Alternatives | None:
    try:
        tree = parse(expression)["children"][0]
    except Exception:
        return None
    return _true_when_absent(tree)


def _true_when_absent(node: dict[str, Any]) -> Alternatives | None:
    kind = node.get("type")
    children = node.get("children", [])
    if kind in ("TermExpression", "ParenthesizedTerm") and len(children) == 1:
        return _true_when_absent(children[0])
    if kind == "OrExpression" and node.get("terminalNodeText") == ["or"]:
        left, right = (_true_when_absent(c) for c in children)
        if left is None and right is None:
            return None
        return (left or []) + (right or [])
    if kind == "AndExpression":
        left, right = (_true_when_absent(c) for c in children)
        if left is None or right is None:
            return None
        return [a | b for a in left for b in right]
    if kind == "ImpliesExpression":
        false_left = _false_when_absent(children[0])
        right = _true_when_absent(children[1])
        if false_left is None and right is None:
            return None
        return (false_left or []) + (right or [])
    chain = _chain(node)
    if chain and chain[-1] == "()empty":
        return _root_alternatives(chain[:-1])
    if chain and chain[-1] == "()not" and len(chain) >= 2 and chain[-2] in ("()exists", "()hasValue"):
        return _root_alternatives(chain[:-2])
    return None


def _false_when_absent(node: dict[str, Any]) -> Alternatives | None:
    kind = node.get("type")
    children = node.get("children", [])
    if kind in ("TermExpression", "ParenthesizedTerm") and len(children) == 1:
        return _false_when_absent(children[0])
    chain = _chain(node)
    if chain and chain[-1] in ("()exists", "()hasValue"):
        return _root_alternatives(chain[:-1])
    if chain and chain[-1] == "()not" and len(chain) >= 2 and chain[-2] == "()empty":
        return _root_alternatives(chain[:-2])
    return None


def _root_alternatives(chain: list[str]) -> Alternatives | None:
    """A member chain `a.where(..).b` is empty when `a` is absent."""
    if not chain or chain[0].startswith("()"):
        return None
    if any(step.startswith("()") and step[2:] not in _EMPTY_PRESERVING for step in chain[1:]):
        return None
    return [frozenset({chain[0]})]


def _chain(node: dict[str, Any]) -> list[str] | None:
    """`a.where(x).b.empty()` -> ['a', '()where', 'b', '()empty']; None for anything else."""
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "InvocationExpression" and len(children) == 2:
        left = _chain(children[0])
        step = _step(children[1])
        return left + [step] if left is not None and step is not None else None
    if kind == "TermExpression" and len(children) == 1 and children[0].get("type") == "InvocationTerm":
        step = _step(children[0]["children"][0])
        return [step] if step is not None else None
    return None


def _step(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    if kind == "MemberInvocation":
        ident = node["children"][0]
        name = ident.get("text") or "".join(ident.get("terminalNodeText", []))
        return name.strip("`") if name else None
    if kind == "FunctionInvocation":
        functn = node["children"][0]
        return "()" + functn["children"][0].get("text", "")
    return None
