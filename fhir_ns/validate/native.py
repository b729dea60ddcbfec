"""Native code for the invariants met on every resource, each proven to give fhirpathpy's verdict.

fhirpathpy walks the parse tree for every evaluation: `ref-1` costs ~100 us per Reference, `bdl-3`,
`bdl-4` and `bdl-7` several milliseconds per Bundle. The functions here implement specific invariant
*expressions*: the vendored text is the key, so an expression that re-vendoring changes loses its
native code and goes back to fhirpathpy. The FHIRPath text stays the definition and the reference.

Each function transliterates its expression step by step with helpers that mirror what fhirpathpy does
(member navigation that also collects a primitive's `_x` twin, `=`, `in`, three-valued `and`/`or`/
`implies` taken from fhirpathpy itself, `all()` stopping at the first entry that is not true ...). It
returns True when the invariant holds and False when it fails. Wherever fhirpathpy would raise (a
`startsWith()` on two strings), or where an input is too odd to mirror with certainty (a datatype that
carries a `resourceType`), it raises `Defer` and fhirpathpy evaluates the expression as before, so
every verdict and every "not evaluated" note is unchanged. `tests/test_validate_invariants.py` compares
every native verdict with fhirpathpy's on the HL7 examples, the samples, the validation corpus, convert
outputs and mutated variants of them, in every FHIR version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirpathpy.engine.invocations.logic import and_op, implies_op, or_op
from fhirpathpy.models import models

from fhir_ns.validate.elements import Node

Truth = Any  # a FHIRPath Boolean as fhirpathpy's operators take and return it: True, False or [] (empty)


class Defer(Exception):
    """The input is outside what the native code mirrors exactly: fhirpathpy decides."""


@dataclass(frozen=True, slots=True)
class Model:
    """The parts of fhirpathpy's model (r4 or r5) that member navigation and `is()` consult."""

    choice_paths: Mapping[str, Any]
    choice_names: frozenset[str]  # last steps of the choice paths: `value`, `code`, `link` ...
    elsewhere: Mapping[str, str]
    path2type: Mapping[str, str]
    type2parent: Mapping[str, str]

    def members(self, obj: Any, key: str) -> list[Any]:
        """`obj.key` as fhirpathpy's member invocation collects it: the value (a list's items) and the
        primitive extension `_key`. A dict's fhirpathpy type is its `resourceType` when it has one:
        should that make `key` a choice element (`Observation.value`), defer."""
        if type(obj) is not dict and not isinstance(obj, Mapping):  # (the first test spares the ABC's for a dict)
            return []
        if key in self.choice_names and "resourceType" in obj:
            path = f"{obj['resourceType']}.{key}"
            if self.choice_paths.get(self.elsewhere.get(path, path)):
                raise Defer
        value = obj.get(key)
        twin = obj.get(_TWINS.get(key) or _twin(key))
        if twin is None:  # the usual case: no primitive extension
            if value is None:
                return []
            return list(value) if isinstance(value, list) else [value]
        out: list[Any] = []
        for found in (value, twin):
            if isinstance(found, list):
                out.extend(found)
            elif found is not None:
                out.append(found)
        return out

    def nav(self, coll: Iterable[Any], key: str) -> list[Any]:
        """`coll.key`."""
        return [x for item in coll for x in self.members(item, key)]

    def is_type(self, path: Any, type_name: str) -> bool:
        """`x.is(T)` for a node fhirpathpy typed `path` (TypeInfo.is_type with the model set)."""
        if not isinstance(path, str) or path.startswith("System."):
            raise Defer
        name: str | None = "BackboneElement" if "." in path else path
        for _ in range(64):
            if not name:
                return False
            if name == type_name:
                return True
            name = self.type2parent.get(name) or self.path2type.get(name)
        raise Defer


_TWINS: dict[str, str] = {}  # key -> `_key`, made once


def _twin(key: str) -> str:
    twin = _TWINS[key] = "_" + key
    return twin


@cache
def model(name: str) -> Model:
    m = models[name]
    choice = m["choiceTypePaths"]
    return Model(
        choice_paths=choice,
        choice_names=frozenset(p.rsplit(".", 1)[-1] for p in choice),
        elsewhere=m["pathsDefinedElsewhere"],
        path2type=m["path2Type"],
        type2parent=m["type2Parent"],
    )


# -- FHIRPath operators as fhirpathpy evaluates them ----------------------------------------------------
def eq(coll: list[Any], literal: str) -> Truth:
    """`coll = 'literal'`: empty when coll is, false when it holds several items (equality.equal)."""
    if not coll:
        return []
    if len(coll) != 1:
        return False
    if isinstance(coll[0], Mapping) and "resourceType" in coll[0]:
        raise Defer  # fhirpathpy would type the item by its resourceType (and may take it for a Quantity)
    return bool(coll[0] == literal)


def ne(coll: list[Any], literal: str) -> Truth:
    """`coll != 'literal'`."""
    result = eq(coll, literal)
    return result if isinstance(result, list) else not result


def in_(coll: list[Any], literals: tuple[str, ...]) -> Truth:
    """`coll in ('a' | 'b')`: empty when coll is; fhirpathpy raises on several items."""
    if not coll:
        return []
    if len(coll) > 1:
        raise Defer
    return any(literal == coll[0] for literal in literals)


def or_(a: Truth, b: Truth) -> Truth:
    return or_op(None, a, b)


def and_(a: Truth, b: Truth) -> Truth:
    return and_op(None, a, b)


def implies(a: Truth, b: Truth) -> Truth:
    return implies_op(None, a, b)


def all_(coll: list[Any], criterion: Callable[[Any], Truth]) -> bool:
    """`coll.all(criterion)`: true when the criterion is true (not empty) for each item, checked in order
    up to the first that is not (fhirpathpy evaluates no further, so raises no further)."""
    return all(criterion(item) is True for item in coll)


def has_value(coll: list[Any]) -> bool:
    """FHIRPath `hasValue()` (FHIR's extension to FHIRPath; fhirpathpy lacks it, `invariants.OPTIONS`
    gives it this function): one primitive with a value."""
    return len(coll) == 1 and coll[0] is not None and not isinstance(coll[0], (dict, list))


def single_string(coll: list[Any]) -> str:
    """A String parameter or function input: fhirpathpy raises unless it is one string."""
    if len(coll) != 1 or not isinstance(coll[0], str):
        raise Defer
    return coll[0]


def first_resource_is(m: Model, bundle: Any, type_name: str) -> Truth:
    """`entry.first().resource.is(type_name)`."""
    first = m.members(bundle, "entry")[:1]
    if first and isinstance(first[0], Mapping) and "resourceType" in first[0]:
        raise Defer  # the entry would be typed by it, and so would a resource without a resourceType
    resources = m.nav(first, "resource")
    if not resources:
        return []
    if len(resources) > 1:
        raise Defer  # is() raises on a collection
    res = resources[0]
    path = res["resourceType"] if isinstance(res, Mapping) and "resourceType" in res else "Resource"
    return m.is_type(path, type_name)


# -- the natives ------------------------------------------------------------------------------------------
Native = Callable[[Node, Model], bool]
NATIVE: dict[tuple[str, str], Native] = {}


def implements(key: str, *expressions: str) -> Callable[[Native], Native]:
    """Register a function as the native code of `key` for exactly these expression texts."""

    def register(fn: Native) -> Native:
        for expression in expressions:
            NATIVE[(key, expression)] = fn
        return fn

    return register


def holds(result: Truth) -> bool:
    """An invariant fails only when its expression is false; empty is not a failure."""
    return result is not False


def _ele_1_children_beat_id(node: Node, m: Model) -> bool:
    value = node.value
    if not isinstance(value, dict) or value.keys() - {"id"}:
        raise Defer  # only the elements `CompiledInvariant.can_fail` hands to ele-1
    # hasValue() is false for a complex element; children() counts every property but `_x` ones
    # (a list by its items), id.count() counts `id` and `_id`
    children = sum(len(v) if isinstance(v, list) else 1 for k, v in value.items() if not k.startswith("_"))
    return children > len(m.members(value, "id"))


@implements("ele-1", "hasValue() or (children().count() > id.count())")
def ele_1(node: Node, m: Model) -> bool:
    return _ele_1_children_beat_id(node, m)


@implements("ele-1", "hasValue() or (children().count() > id.count()) or $this is Parameters")
def ele_1_r4b(node: Node, m: Model) -> bool:
    parameters = m.is_type(node.type_path, "Parameters")  # `$this is Parameters`
    return _ele_1_children_beat_id(node, m) or parameters


@implements(
    "ref-1",
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))",
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids')) or (reference='#' and %rootResource!=%resource)",
    "reference.exists()  implies (reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids')) or (reference='#' and %rootResource!=%resource))",
)
def ref_1(node: Node, m: Model) -> bool:
    """All three versions fail exactly when `reference` is one string `#x` (x not empty) and no resource
    contained in %rootResource has the id `x`: without a reference every term is empty or the
    `implies` true; a reference not starting with '#' makes the first term true; `'#'.substring(1)` is
    empty, so a bare '#' never fails either; `reference='#'` is false for `#x`."""
    value = node.value
    reference = value.get("reference") if type(value) is dict else None
    if type(reference) is not str or "_reference" in value or "reference" in m.choice_names:
        # anything but the usual Reference's one string (which is what `members` would give): as it collects it
        refs = m.members(value, "reference")
        if not refs:
            return True
        reference = single_string(refs)  # startsWith() raises otherwise
    if not reference.startswith("#") or len(reference) == 1:
        return True
    target = reference[1:]
    return any(i == target for c in m.members(node.root, "contained") for i in m.members(c, "id"))


@implements("dom-2", "contained.contained.empty()")
def dom_2(node: Node, m: Model) -> bool:
    return not m.nav(m.members(node.value, "contained"), "contained")


@implements("dom-4", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()")
def dom_4(node: Node, m: Model) -> bool:
    meta = m.nav(m.members(node.value, "contained"), "meta")
    return holds(and_(not m.nav(meta, "versionId"), not m.nav(meta, "lastUpdated")))


@implements("dom-5", "contained.meta.security.empty()")
def dom_5(node: Node, m: Model) -> bool:
    return not m.nav(m.nav(m.members(node.value, "contained"), "meta"), "security")


@implements("dom-6", "text.`div`.exists()")
def dom_6(node: Node, m: Model) -> bool:
    value = node.value
    if type(value) is dict and "text" not in value and "_text" not in value and "text" not in m.choice_names:
        return False  # no narrative (the usual case): `text` collects nothing, so neither does its `div`
    return bool(m.nav(m.members(value, "text"), "div"))


@implements("qty-3", "code.empty() or system.exists()")
def qty_3(node: Node, m: Model) -> bool:
    value = node.value
    # where `members` can neither defer nor find a twin, a system, or no code, makes the expression true
    plain = type(value) is dict and "resourceType" not in value and "_code" not in value and "_system" not in value
    if plain and (type(value.get("system")) is str or value.get("code") is None):
        return True
    return holds(or_(not m.members(value, "code"), bool(m.members(value, "system"))))


@implements("obs-3", "low.exists() or high.exists() or text.exists()")
def obs_3(node: Node, m: Model) -> bool:
    value = node.value
    if type(value) is dict and "resourceType" not in value and type(value.get("text")) is str:
        return True  # (`members` can defer only where there is a resourceType) the usual range: a text
    return any(m.members(value, key) for key in ("low", "high", "text"))


@implements("tim-2", "period.empty() or periodUnit.exists()")
def tim_2(node: Node, m: Model) -> bool:
    return not m.members(node.value, "period") or bool(m.members(node.value, "periodUnit"))


@implements("tim-5", "period.exists() implies period >= 0")
def tim_5(node: Node, m: Model) -> bool:
    period = m.members(node.value, "period")
    if not period:
        return True
    if len(period) != 1 or isinstance(period[0], bool) or not isinstance(period[0], (int, float)):
        raise Defer  # a comparison fhirpathpy refuses or types otherwise
    return bool(period[0] >= 0)


@implements("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)")
def per_1(node: Node, m: Model) -> bool:
    """Decided natively when either bound has no value, or both are dates of the same precision (a year,
    a month or a day: then `<=` is the order of the text); times and mixed precisions go to fhirpathpy."""
    start, end = m.members(node.value, "start"), m.members(node.value, "end")
    if not has_value(start) or not has_value(end):
        return True
    first, last = start[0], end[0]
    if not (isinstance(first, str) and isinstance(last, str) and len(first) == len(last)):
        raise Defer
    if not (_PLAIN_DATE.fullmatch(first) and _PLAIN_DATE.fullmatch(last)):
        raise Defer
    return first <= last


_PLAIN_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")

# -- Condition (R4, R4B): met on every Condition, each evaluation ~0.4 ms in fhirpathpy ----------------------
_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _entered_in_error(m: Model, condition: Any) -> bool:
    """`verificationStatus.coding.where(system='...condition-ver-status' and code='entered-in-error').exists()`:
    where() keeps a coding whose criterion is true (not empty)."""
    codings = m.nav(m.members(condition, "verificationStatus"), "coding")
    return any(
        and_(eq(m.members(c, "system"), _VER_STATUS), eq(m.members(c, "code"), "entered-in-error")) is True
        for c in codings
    )


@implements(
    "con-3",
    "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code = 'entered-in-error').exists() or category.select($this='problem-list-item').empty()",
)
def con_3(node: Node, m: Model) -> bool:
    """`category.select($this='problem-list-item')` holds one Boolean per category (a CodeableConcept is not
    equal to a string, but the comparison is still a result), so it is empty only without categories."""
    value = node.value
    if m.members(value, "clinicalStatus") or _entered_in_error(m, value):
        return True
    selected = [result for item in m.members(value, "category") if (result := eq([item], "problem-list-item")) != []]
    return not selected


@implements(
    "con-5",
    "verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code='entered-in-error').empty() or clinicalStatus.empty()",
)
def con_5(node: Node, m: Model) -> bool:
    return not _entered_in_error(m, node.value) or not m.members(node.value, "clinicalStatus")


# -- Bundle: each once per Bundle, linear in its entries ---------------------------------------------------
@implements("bdl-1", "total.empty() or (type = 'searchset') or (type = 'history')")
def bdl_1(node: Node, m: Model) -> bool:
    kind = m.members(node.value, "type")
    return holds(or_(or_(not m.members(node.value, "total"), eq(kind, "searchset")), eq(kind, "history")))


@implements("bdl-2", "entry.search.empty() or (type = 'searchset')")
def bdl_2(node: Node, m: Model) -> bool:
    no_search = not m.nav(m.members(node.value, "entry"), "search")
    return holds(or_(no_search, eq(m.members(node.value, "type"), "searchset")))


@implements("bdl-2", "(type = 'searchset') or entry.search.empty()")
def bdl_2_r5(node: Node, m: Model) -> bool:
    no_search = not m.nav(m.members(node.value, "entry"), "search")
    return holds(or_(eq(m.members(node.value, "type"), "searchset"), no_search))


def _entries_match_type(node: Node, m: Model, element: str, types: tuple[str, str, str]) -> bool:
    """`entry.all(<element>.exists() = (%resource.type = t1 or %resource.type = t2 or %resource.type = t3))`"""
    entries = m.members(node.value, "entry")
    if not entries:
        return True
    kind = m.members(node.resource, "type")
    wanted = or_(or_(eq(kind, types[0]), eq(kind, types[1])), eq(kind, types[2]))
    if isinstance(wanted, list):
        return False  # `x = {}` is empty, and all() wants true: the first entry fails it
    return all_(entries, lambda e: bool(m.members(e, element)) == wanted)


@implements(
    "bdl-3",
    "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or %resource.type = 'history'))",
)
def bdl_3(node: Node, m: Model) -> bool:
    return _entries_match_type(node, m, "request", ("batch", "transaction", "history"))


@implements(
    "bdl-4",
    "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = 'transaction-response' or %resource.type = 'history'))",
)
def bdl_4(node: Node, m: Model) -> bool:
    return _entries_match_type(node, m, "response", ("batch-response", "transaction-response", "history"))


@implements("bdl-5", "resource.exists() or request.exists() or response.exists()")
def bdl_5(node: Node, m: Model) -> bool:
    return any(m.members(node.value, name) for name in ("resource", "request", "response"))


@implements(
    "bdl-7",
    "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
    "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&iif(resource.meta.versionId.exists(), resource.meta.versionId, '')).isDistinct()",
)
def bdl_7(node: Node, m: Model) -> bool:
    """fullUrl & versionId (a missing versionId is '' either way) is distinct across the entries that
    have a fullUrl: one pass with a set instead of fhirpathpy's pairwise distinct()."""
    seen: set[str] = set()
    distinct = True
    for entry in m.members(node.value, "entry"):
        key = bdl_7_key(entry, m)
        if key is None:
            continue
        distinct = distinct and key not in seen
        seen.add(key)
    return holds(or_(eq(m.members(node.value, "type"), "history"), distinct))


def bdl_7_key(entry: Any, m: Model) -> str | None:
    """What bdl-7 compares of an entry (`fullUrl & versionId`), None for an entry without fullUrl; raises Defer
    where fhirpathpy must decide."""
    urls = m.members(entry, "fullUrl")
    if not urls:
        return None
    version = m.nav(m.nav(m.members(entry, "resource"), "meta"), "versionId")
    return single_string(urls) + (single_string(version) if version else "")  # `&` takes String singletons


@implements(
    "bdl-8",
    "fullUrl.contains('/_history/').not()",
    "fullUrl.exists() implies fullUrl.contains('/_history/').not()",
)
def bdl_8(node: Node, m: Model) -> bool:
    urls = m.members(node.value, "fullUrl")
    return not urls or "/_history/" not in single_string(urls)  # contains() raises unless one string


@implements("bdl-9", "type = 'document' implies (identifier.system.exists() and identifier.value.exists())")
def bdl_9(node: Node, m: Model) -> bool:
    identifier = m.members(node.value, "identifier")
    complete = and_(bool(m.nav(identifier, "system")), bool(m.nav(identifier, "value")))
    return holds(implies(eq(m.members(node.value, "type"), "document"), complete))


@implements("bdl-10", "type = 'document' implies (timestamp.hasValue())")
def bdl_10(node: Node, m: Model) -> bool:
    stamped = has_value(m.members(node.value, "timestamp"))
    return holds(implies(eq(m.members(node.value, "type"), "document"), stamped))


@implements("bdl-11", "type = 'document' implies entry.first().resource.is(Composition)")
def bdl_11(node: Node, m: Model) -> bool:
    first = first_resource_is(m, node.value, "Composition")
    return holds(implies(eq(m.members(node.value, "type"), "document"), first))


@implements("bdl-12", "type = 'message' implies entry.first().resource.is(MessageHeader)")
def bdl_12(node: Node, m: Model) -> bool:
    first = first_resource_is(m, node.value, "MessageHeader")
    return holds(implies(eq(m.members(node.value, "type"), "message"), first))


# R5 reworded bdl-3/bdl-4 into bdl-3a..3d and added bdl-13..18
@implements(
    "bdl-3a",
    "type in ('document' | 'message' | 'searchset' | 'collection') implies entry.all(resource.exists() and request.empty() and response.empty())",
)
def bdl_3a(node: Node, m: Model) -> bool:
    def criterion(e: Any) -> Truth:
        return and_(and_(bool(m.members(e, "resource")), not m.members(e, "request")), not m.members(e, "response"))

    kind = in_(m.members(node.value, "type"), ("document", "message", "searchset", "collection"))
    return holds(implies(kind, all_(m.members(node.value, "entry"), criterion)))


def _method_matches_resource(m: Model, entry: Any) -> Truth:
    """`(request.method in ('POST' | 'PATCH' | 'PUT')) = resource.exists()`"""
    writes = in_(m.nav(m.members(entry, "request"), "method"), ("POST", "PATCH", "PUT"))
    return writes if isinstance(writes, list) else writes == bool(m.members(entry, "resource"))


@implements(
    "bdl-3b",
    "type = 'history' implies entry.all(request.exists() and response.exists() and ((request.method in ('POST' | 'PATCH' | 'PUT')) = resource.exists()))",
)
def bdl_3b(node: Node, m: Model) -> bool:
    def criterion(e: Any) -> Truth:
        both = and_(bool(m.members(e, "request")), bool(m.members(e, "response")))
        return and_(both, _method_matches_resource(m, e))

    kind = eq(m.members(node.value, "type"), "history")
    return holds(implies(kind, all_(m.members(node.value, "entry"), criterion)))


@implements(
    "bdl-3c",
    "type in ('transaction' | 'batch') implies entry.all(request.method.exists() and ((request.method in ('POST' | 'PATCH' | 'PUT')) = resource.exists()))",
)
def bdl_3c(node: Node, m: Model) -> bool:
    def criterion(e: Any) -> Truth:
        return and_(bool(m.nav(m.members(e, "request"), "method")), _method_matches_resource(m, e))

    kind = in_(m.members(node.value, "type"), ("transaction", "batch"))
    return holds(implies(kind, all_(m.members(node.value, "entry"), criterion)))


@implements("bdl-3d", "type in ('transaction-response' | 'batch-response') implies entry.all(response.exists())")
def bdl_3d(node: Node, m: Model) -> bool:
    kind = in_(m.members(node.value, "type"), ("transaction-response", "batch-response"))
    return holds(implies(kind, all_(m.members(node.value, "entry"), lambda e: bool(m.members(e, "response")))))


@implements("bdl-13", "type = 'subscription-notification' implies entry.first().resource.is(SubscriptionStatus)")
def bdl_13(node: Node, m: Model) -> bool:
    first = first_resource_is(m, node.value, "SubscriptionStatus")
    return holds(implies(eq(m.members(node.value, "type"), "subscription-notification"), first))


@implements("bdl-14", "type = 'history' implies entry.request.method != 'PATCH'")
def bdl_14(node: Node, m: Model) -> bool:
    methods = m.nav(m.nav(m.members(node.value, "entry"), "request"), "method")
    return holds(implies(eq(m.members(node.value, "type"), "history"), ne(methods, "PATCH")))


@implements(
    "bdl-15",
    "type='transaction' or type='transaction-response' or type='batch' or type='batch-response' or entry.all(fullUrl.exists() or request.method='POST')",
)
def bdl_15(node: Node, m: Model) -> bool:
    def criterion(e: Any) -> Truth:
        return or_(bool(m.members(e, "fullUrl")), eq(m.nav(m.members(e, "request"), "method"), "POST"))

    kind = m.members(node.value, "type")
    result: Truth = eq(kind, "transaction")
    for name in ("transaction-response", "batch", "batch-response"):
        result = or_(result, eq(kind, name))
    return holds(or_(result, all_(m.members(node.value, "entry"), criterion)))


@implements(
    "bdl-16",
    "issues.exists() implies (issues.issue.severity = 'information' or issues.issue.severity = 'warning')",
)
def bdl_16(node: Node, m: Model) -> bool:
    issues = m.members(node.value, "issues")
    severity = m.nav(m.nav(issues, "issue"), "severity")
    return holds(implies(bool(issues), or_(eq(severity, "information"), eq(severity, "warning"))))


@implements("bdl-17", "type = 'document' implies issues.empty()")
def bdl_17(node: Node, m: Model) -> bool:
    return holds(implies(eq(m.members(node.value, "type"), "document"), not m.members(node.value, "issues")))


@implements("bdl-18", "type = 'searchset' implies link.where(relation = 'self' and url.exists()).exists()")
def bdl_18(node: Node, m: Model) -> bool:
    def criterion(link: Any) -> Truth:
        return and_(eq(m.members(link, "relation"), "self"), bool(m.members(link, "url")))

    has_self = any(criterion(link) is True for link in m.members(node.value, "link"))
    return holds(implies(eq(m.members(node.value, "type"), "searchset"), has_self))
