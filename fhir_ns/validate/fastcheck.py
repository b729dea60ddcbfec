"""A cheap proof that an entry passes layers 2 and 3, so that `convert`'s gate runs them only when it fails.

For each FHIR version and resource type, a strict msgspec schema is derived from the very fhir.resources models
layer 2 validates with (`structure.model_class`: elements, cardinality, types, required elements, choice types)
and from the required bindings layer 3 checks (`spec.bindings`, placed by the element paths `elements.walk`
gives). Decoding an entry's JSON text with it succeeds only if neither layer can find anything in the entry.
It is stricter than the layers wherever exactness would cost time or certainty: no nulls, no empty arrays, ids
of 64 characters at most, years 1000 to 2999, no leap second, no whitespace but space, tab, CR and LF, nothing
nested deeper than 24. What it does not model fails the decode: `fhir_comments`, elements of type uuid,
contained resources of types fhir-ns does not read. A failed decode proves nothing; the gate then runs the
layers, which say what is wrong, if anything. tests/test_fastcheck.py holds it to that on thousands of entries.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from functools import cache
from operator import attrgetter
from types import UnionType
from typing import Annotated, Any, Literal

import msgspec
from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from msgspec import UNSET, Meta

from fhir_ns.fhir.shapes import READ_TYPES
from fhir_ns.validate.spec import Binding, FhirVersion, load_spec
from fhir_ns.validate.structure import model_class

# Whitespace other than space, tab, CR and LF, for Python's `str.isspace` or Unicode's White_Space (pydantic-core's
# Rust `\s`), and a few invisible characters besides; in JSON text, as UTF-8 or as an escape. An entry holding none
# is only checked further, so that no string of it is whitespace that either regex engine could see differently.
_ODD_SPACE = re.compile(
    rb"\\f|\\u(?i:000[bc]|001[c-f]|0085|00a0|1680|180e|200[0-9ab]|202[89f]|205f|3000|feff)"
    rb"|\xc2[\x85\xa0]|\xe1\x9a\x80|\xe1\xa0\x8e|\xe2\x80[\x80-\x8b\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80|\xef\xbb\xbf"
)
# fhir.resources validates recursively, and fails (RecursionError) on deep nesting at a depth that depends on the
# caller's stack: deeper entries than this are left to the layers, which report that failure.
_MAX_DEPTH = 24
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"{}[]')))
_QUOTED = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\{\}|\[\]")
_CODE = r"\A\S+(?:\s\S+)*\Z"  # fhir.resources: ^[^\s]+(\s[^\s]+)*$

_YEAR = "[12][0-9]{3}"
_MONTH = "(?:0[1-9]|1[0-2])"
_MONTH_DAY = "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_LEAP_YEAR = "(?:[12][0-9](?:0[48]|[2468][048]|[13579][26])|(?:1[26]|2[048])00)"
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_ZONE = "(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
# The primitive types the schema checks, as fhir.resources names them, for text without odd whitespace. uri,
# canonical, markdown, xhtml and url take any string there (their patterns, searched, match the empty string; url
# falls back to a plain string); the others are as strict as fhir.resources or stricter. uuid is not modelled.
_PRIMITIVES: dict[str, Any] = {
    "boolean": bool,
    "string": Annotated[str, Meta(min_length=1)],  # `[ \r\n\t\S]+`, searched: any non-empty string but odd space
    "code": Annotated[str, Meta(pattern=_CODE)],
    "id": Annotated[str, Meta(pattern=r"\A[A-Za-z0-9\-.]{1,64}\Z")],
    "uri": str,
    "canonical": str,
    "markdown": str,
    "xhtml": str,
    "url": str,
    "base64Binary": Annotated[str, Meta(pattern=r"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")],
    "oid": Annotated[str, Meta(pattern=r"\Aurn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+\Z")],
    "integer": Annotated[int, Meta(ge=-_INT32 - 1, le=_INT32)],
    "unsignedInt": Annotated[int, Meta(ge=0, le=_INT32)],
    "positiveInt": Annotated[int, Meta(ge=1, le=_INT32)],
    "integer64": Annotated[int, Meta(ge=-_INT64, le=_INT64)],
    "decimal": Annotated[int, Meta(ge=-_INT64, le=_INT64)] | float,  # JSON has no NaN; msgspec refuses infinity
    "date": Annotated[str, Meta(pattern=rf"\A(?:{_YEAR}(?:-{_MONTH})?|{_DATE})\Z")],
    "dateTime": Annotated[str, Meta(pattern=rf"\A(?:{_YEAR}(?:-{_MONTH})?|{_DATE}(?:T{_TIME}{_ZONE})?)\Z")],
    "instant": Annotated[str, Meta(pattern=rf"\A{_DATE}T{_TIME}{_ZONE}\Z")],
    "time": Annotated[str, Meta(pattern=rf"\A{_TIME}\Z")],
}
_NOT_TEXT = frozenset({"boolean", "integer", "unsignedInt", "positiveInt", "integer64", "decimal"})
# The base of elements whose paths the spec knows nothing under: walk names them, but no type or binding is found
_UNNAMED = "?"
_CODED = ("Coding", "CodeableConcept")  # the bindings of other types than code that layer 3 checks
_DECODE_ERRORS = (ValueError, RecursionError)  # msgspec's errors, and text that is not UTF-8


def proves_clean(raw: bytes, resource_type: str, version: FhirVersion) -> bool:
    """True only if layers 2 and 3 would find nothing in this resource (JSON text); False says nothing."""
    decoder = _decoder(version, resource_type)
    if decoder is None or not _plain_space(raw) or not _shallow(raw):
        return False
    try:
        decoder.decode(raw)
    except _DECODE_ERRORS:
        return False
    return True


def _plain_space(raw: bytes) -> bool:
    return (raw.isascii() and b"\\" not in raw) or _ODD_SPACE.search(raw) is None


def _shallow(raw: bytes) -> bool:
    """Nested at most _MAX_DEPTH deep: a count of openings, or else the nesting outside strings, pair by pair."""
    if raw.count(b"{") + raw.count(b"[") <= _MAX_DEPTH:
        return True
    structure = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    nesting = _QUOTED.sub(b"", structure)
    for _ in range(_MAX_DEPTH):
        if not nesting:
            return True
        nesting = _INNERMOST.sub(b"", nesting)
    return not nesting


@cache
def _decoder(version: FhirVersion, resource_type: str) -> msgspec.json.Decoder[Any] | None:
    model = model_class(version, resource_type)
    if model is None:
        return None
    return msgspec.json.Decoder(_schema(version).struct(model, resource_type, None), strict=True)


@cache
def _schema(version: FhirVersion) -> _Schema:
    return _Schema(version)


class _Schema:
    """The Structs of one version, one per (model, element path of its children, binding on it), made on demand."""

    def __init__(self, version: FhirVersion) -> None:
        self.version = version
        self.spec = load_spec(version)
        self.structs: dict[tuple[Any, str, str | None], type] = {}
        named = [*self.spec.path_types, *self.spec.bindings, *self.spec.defined_elsewhere]
        self.stems = {name.rsplit(".", n)[0] for name in named for n in range(1, name.count(".") + 1)}

    def struct(self, model: Any, base: str, binding: Binding | None) -> type:
        """The Struct of `model` where walk names its children `base.<element>`; `binding` bound on it."""
        key = (model, base, binding.element if binding else None)
        if key in self.structs:
            return self.structs[key]
        plans = [plan for name, info in model.model_fields.items() if (plan := self._plan(base, name, info))]
        checks = _choice_checks(model, {plan.name for plan in plans})
        if model.__resource_type__ == "FHIRPrimitiveExtension":
            checks.append(_has_id_or_extension)
        if binding is not None:
            checks.append(_coding_check(binding, many=binding.kind == "CodeableConcept"))
        required = {name for name, _ in model.model_construct().get_required_fields()}
        required |= {info.alias or name for name, info in model.model_fields.items() if info.is_required()}
        if required - {plan.alias for plan in plans}:
            checks.append(_never)  # a required element the schema does not model: absent or not, not proven
        resource = {"tag_field": "resourceType", "tag": model.__resource_type__} if model.has_resource_base() else {}
        cls = msgspec.defstruct(
            f"{model.__name__}_{base.replace('.', '_')}",
            [(p.name, Any) if p.alias in required else (p.name, Any, UNSET) for p in plans],
            kw_only=True,
            forbid_unknown_fields=True,
            rename={p.name: p.alias for p in plans},
            namespace={"__post_init__": _run(checks)} if checks else {},
            gc=False,
            **resource,
        )
        self.structs[key] = cls  # before the field types, which may lead back here (Extension.extension)
        for plan in plans:
            cls.__annotations__[plan.name] = plan.resolve()
        return cls

    def resources(self) -> Any:
        """Any resource of a type fhir-ns reads, told apart by resourceType (a contained resource)."""
        models = [(t, m) for t in sorted(READ_TYPES) if (m := model_class(self.version, t)) is not None]
        return typing.Union[tuple(self.struct(m, t, None) for t, m in models)]  # noqa: UP007 (a runtime union)

    def _plan(self, base: str, name: str, info: Any) -> _Field | None:
        """How to check one field of a model, or None when the schema does not model it (its presence fails)."""
        if name == "fhir_comments":
            return None
        alias = info.alias or name
        inner, many = _unwrap(info.annotation)
        if alias.startswith("_"):  # a primitive's id and extensions: walk names their children Element.<element>
            typ, child_base, binding = None, "Element", None
        else:
            path = f"{base}.{alias}"
            path = self.spec.defined_elsewhere.get(path, path)
            typ = self.spec.path_types.get(path)
            child_base = path if typ is None or typ in ("BackboneElement", "Element") else typ
            if child_base not in self.stems:
                child_base = _UNNAMED
            binding = self.spec.bindings.get(path)
        is_resource = isinstance(inner, type) and issubclass(inner, FhirElementOrResourceBase)
        if is_resource or typ == "Resource":  # contained: a resource, of the type its resourceType says
            if is_resource != (typ == "Resource"):
                return None  # a resource where walk sees none, or the other way round
            return _Field(name, alias, lambda: _listed(self.resources(), many))
        if isinstance(inner, type) and issubclass(inner, FhirBase):
            target = inner.get_model_klass()
            if binding is not None and binding.kind == "code":
                binding = None  # a code binding on an element: layer 3 checks only string values
            elif binding is not None and (binding.kind != target.__name__ or binding.kind not in _CODED):
                return None  # a coded binding on another type: layer 3 always fails it
            return _Field(name, alias, lambda: _listed(self.struct(target, child_base, binding), many))
        primitive = _primitive_name(inner)
        value_type = _PRIMITIVES.get(primitive or "")
        if value_type is None:
            return None
        if binding is not None:
            if binding.kind != "code":
                return None  # a Coding or CodeableConcept binding on a primitive always fails layer 3
            if primitive not in _NOT_TEXT:  # layer 3 checks a code binding on string values only
                allowed = tuple(sorted(c for c in binding.all_codes if _fits(c, value_type)))
                if not allowed:
                    return None
                value_type = Literal[allowed]
        return _Field(name, alias, lambda: _listed(value_type, many))


class _Field(typing.NamedTuple):
    name: str
    alias: str
    resolve: Callable[[], Any]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """`List[X] | None` -> (X, True); `X | None` -> (X, False)."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None, many
            annotation = args[0]
        elif origin is list:
            many = True
            (annotation,) = typing.get_args(annotation)
        else:
            return annotation, many


def _primitive_name(annotation: Any) -> str | None:
    try:
        return FHIR_PRIMITIVES_MAPS.get(annotation)
    except TypeError:  # an unhashable annotation is not a primitive
        return None


def _listed(value_type: Any, many: bool) -> Any:
    return Annotated[list[value_type], Meta(min_length=1)] if many else value_type  # type: ignore[valid-type]


def _fits(code: str, value_type: Any) -> bool:
    try:
        msgspec.convert(code, value_type, strict=True)
    except msgspec.ValidationError:
        return False
    return True


Check = Callable[[Any], None]


def _run(checks: list[Check]) -> Callable[[Any], None]:
    if len(checks) == 1:  # the usual case: the check itself, one call less for each object decoded
        return checks[0]

    def post_init(self: Any) -> None:
        for check in checks:
            check(self)

    return post_init


def _choice_checks(model: Any, modelled: set[str]) -> list[Check]:
    """fhir.resources' choice rule: one type of a choice element at most, and one at least where required."""
    checks: list[Check] = []
    for names in model.model_construct().get_one_of_many_fields().values():
        required = model.model_fields[names[0]].json_schema_extra["one_of_many_required"] is True
        present = [n for n in names if n in modelled]  # an unmodelled one fails the decode if present
        if len(present) > 1 or required:
            checks.append(_one_of(present, required))
    return checks


def _one_of(names: list[str], required: bool) -> Check:
    values = attrgetter(*names) if len(names) > 1 else (lambda self: tuple(getattr(self, n) for n in names))
    count = len(names)

    def check(self: Any) -> None:
        present = count - values(self).count(UNSET)
        if present > 1 or (required and present == 0):
            raise ValueError("choice")

    return check


def _never(self: Any) -> None:
    raise ValueError("not modelled")


def _has_id_or_extension(self: Any) -> None:
    if self.id is UNSET and self.extension is UNSET:
        raise ValueError("empty primitive extension")


def _coding_check(binding: Binding, many: bool) -> Check:
    """Layer 3 on a Coding (or CodeableConcept): a (system, code) of the value set."""
    allowed = frozenset((system, code) for system, codes in binding.codes.items() for code in codes)

    def check(self: Any) -> None:
        codings = (self.coding if self.coding is not UNSET else ()) if many else (self,)
        if not any((c.system, c.code) in allowed for c in codings):
            raise ValueError("binding")

    return check
