"""Layer 2: structure, through the fhir.resources models of the version (R4 data through `fhir.resources.R4B`).

Cardinality, types, choice exclusivity (`value[x]`), unknown elements, date/dateTime formats and zones.
Each pydantic error becomes an Issue whose path is the FHIRPath-like location of the element.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

from pydantic import ValidationError

from fhir_ns.validate.issues import Issue, join
from fhir_ns.validate.spec import MODEL_PACKAGE, FhirVersion

_CHOICE = re.compile(r"Any of one field value is expected from this list \[(.*?)\]")
_FORMAT = re.compile(r"^(\w+) value string does not match spec regex")
_CODES = {"extra_forbidden": "structure", "missing": "required", "model_field_validation.missing": "required"}


@cache
def model_class(version: FhirVersion, resource_type: str) -> Any:
    """The fhir.resources model of a resource type, or None when the version has no such type."""
    package = importlib.import_module(MODEL_PACKAGE[version])
    try:
        return package.get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def check_resource(resource: dict[str, Any], version: FhirVersion) -> list[Issue]:
    """Validate one resource (its contained resources included) against its model."""
    model = model_class(version, str(resource.get("resourceType")))
    if model is None:
        return []  # an unknown resourceType is a syntax error (layer 1); there is no model to check against
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [_issue(error, resource) for error in exc.errors()]
    except Exception as exc:  # fhir.resources failing on odd input is reported, never raised
        return [Issue("error", "exception", f"fhir.resources cannot read this resource: {exc!r}", "structure")]
    return []


def check_bundle_shell(bundle: dict[str, Any], version: FhirVersion) -> list[Issue]:
    """Validate a Bundle without its entries' resources (those are validated one by one)."""
    shell = dict(bundle)
    entries = bundle.get("entry")
    if isinstance(entries, list):
        shell["entry"] = [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e for e in entries
        ]
    return check_resource(shell, version)


def _issue(error: Any, resource: dict[str, Any]) -> Issue:
    steps = [s for s in error["loc"] if s != "root"]
    path = _path(steps)
    kind = str(error["type"])
    message = str(error["msg"]).removeprefix("Value error, ")
    choice = _CHOICE.search(message)
    if choice:
        names = [n.strip(" '") for n in choice.group(1).split(",")]
        target = _follow(resource, steps)
        found = [n for n in names if isinstance(target, dict) and n in target]
        stem = _common_prefix(names)
        return Issue(
            "error",
            "structure",
            f"only one {stem}[x] is allowed; found {', '.join(found) or 'several'}",
            "structure",
            join(path, f"{stem}[x]"),
        )
    if kind == "extra_forbidden":
        message = "unknown element (not in this FHIR version's definition of the resource)"
    elif kind in ("missing", "model_field_validation.missing"):
        message = "required element is missing"
    elif _FORMAT.search(message):
        datatype = _FORMAT.search(message).group(1)  # type: ignore[union-attr]
        hint = " (a time needs a zone, e.g. +01:00 or Z)" if datatype in ("DateTime", "Instant") else ""
        message = f"{error.get('input')!r} is not a valid FHIR {datatype[0].lower()}{datatype[1:]}{hint}"
    elif "input" in error and kind != "missing":
        shown = repr(error["input"])
        message = f"{message.rstrip('.')} (found {shown[:80]}{'...' if len(shown) > 80 else ''})"
    return Issue(
        "error", _CODES.get(kind, "value" if kind == "value_error" else "structure"), message, "structure", path
    )


def _path(steps: list[Any]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            name = "resourceType" if step == "resource_type" else str(step)
            if name.endswith("__ext"):
                name = "_" + name[: -len("__ext")]
            out = join(out, name)
    return out


def _follow(value: Any, steps: list[Any]) -> Any:
    for step in steps:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _common_prefix(names: list[str]) -> str:
    if not names:
        return "value"
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    # stop at the last lower-case letter: valueBoolean/valueString -> value
    while prefix and prefix[-1].isupper():
        prefix = prefix[:-1]
    return prefix or "value"
