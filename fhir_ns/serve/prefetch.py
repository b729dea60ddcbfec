"""The data of one CDS Hooks call: the prefetch the client sent, and what it left out fetched from its FHIR server.

A key that is present holds the resource or searchset Bundle of its template; `null` means the client has
no such data; an absent key (or an OperationOutcome in its place) is fetched from `fhirServer` with the
`fhirAuthorization` token, all keys in parallel, next pages followed up to a cap, everything cut off after
a set time. A token is sent only to a server the caller may name (the issuer's allowlist), and a next-page
link is followed only on that same server. When the data cannot be had, the call gets 412 (CDS Hooks:
"unable to retrieve the necessary FHIR data"). Nothing here logs a URL, a token or a resource.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import requests
from requests.adapters import HTTPAdapter

from fhir_ns import __version__

# what fhir-ns reads (fhir/extract.py), newest first so that a capped search keeps the recent history
SEARCHES = {
    "observations": ("Observation", "-date", ""),
    "conditions": ("Condition", "-recorded-date", ""),
    "medicationrequests": ("MedicationRequest", "-authoredon", "&_include=MedicationRequest:medication"),
    "medicationstatements": ("MedicationStatement", "-effective", "&_include=MedicationStatement:medication"),
    "medicationadministrations": (
        "MedicationAdministration",
        "-effective-time",
        "&_include=MedicationAdministration:medication",
    ),
    "procedures": ("Procedure", "-date", ""),
    "allergyintolerances": ("AllergyIntolerance", "-date", ""),  # a CNI named in one: cni-intolerant
}
PATIENT_TOKEN = "{{context.patientId}}"
FHIR_JSON = "application/fhir+json"


class PrefetchUnavailable(Exception):
    """The data a call needs cannot be had (answered with 412); the message names no patient and no URL."""


def templates(page_size: int) -> dict[str, str]:
    """The prefetch templates of the patient-view service (its discovery entry)."""
    out = {"patient": f"Patient/{PATIENT_TOKEN}"}
    for key, (rtype, sort, include) in SEARCHES.items():
        out[key] = f"{rtype}?patient={PATIENT_TOKEN}&_sort={sort}&_count={page_size}{include}"
    return out


@dataclass(frozen=True, slots=True)
class FhirAccess:
    """Where missing data may be fetched: the client's FHIR server, its token (None: an open server), and
    whether the caller may name that server at all."""

    server: str | None
    token: str | None
    allowed: bool
    unscoped: tuple[str, ...] = ()  # resource types the token's scope does not let us read


@dataclass(slots=True)
class Gathered:
    """The resources of one call, each with the prefetch key it came from, and what limited them."""

    resources: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fetched: int = 0  # requests sent to the FHIR server
    capped: list[str] = field(default_factory=list)  # keys whose search had more pages than the cap


class Fetcher:
    """Fetches from CDS clients' FHIR servers: one pooled HTTP session, a few threads, a deadline per call."""

    def __init__(self, timeout_s: float, page_cap: int, workers: int = 16) -> None:
        self.timeout_s = timeout_s
        self.page_cap = page_cap
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": f"fhir-ns/{__version__}"})
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-fetch")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def gather(self, prefetch: Any, wanted: dict[str, str], patient_id: str, access: FhirAccess) -> Gathered:
        """Every resource of the `wanted` templates (key -> template) for the patient: prefetched, or fetched."""
        if prefetch is not None and not isinstance(prefetch, dict):
            raise PrefetchUnavailable("prefetch is not a JSON object")
        prefetch = prefetch or {}
        out = Gathered()
        tasks: list[tuple[str, str]] = []  # (key, relative query or absolute next-page URL)
        for key, template in wanted.items():
            value = prefetch.get(key, _ABSENT)
            if value is None:
                continue  # the client has no such data
            if not isinstance(value, dict) or value.get("resourceType") in (None, "OperationOutcome"):
                tasks.append((key, template.replace(PATIENT_TOKEN, quote(patient_id, safe=""))))
                continue
            if value.get("resourceType") != "Bundle":
                out.resources.append((key, value))
                continue
            out.resources.extend((key, r) for r in _bundle_resources(value))
            next_page = _next_link(value)
            if next_page:
                tasks.append((key, next_page))
        if tasks:
            self._fetch(tasks, access, out)
        return out

    def _fetch(self, tasks: list[tuple[str, str]], access: FhirAccess, out: Gathered) -> None:
        if not access.server:
            raise PrefetchUnavailable("prefetch incomplete and no fhirServer to fetch the rest from")
        if not access.allowed:
            raise PrefetchUnavailable("prefetch incomplete and the fhirServer given is not allowed for this caller")
        needed = {_resource_type(query, access.server) for _, query in tasks}
        missing = sorted(needed & set(access.unscoped))
        if missing:
            raise PrefetchUnavailable(f"prefetch incomplete and the token's scope does not cover {', '.join(missing)}")
        base = access.server.rstrip("/")
        deadline = time.monotonic() + self.timeout_s
        headers = {"Authorization": f"Bearer {access.token}"} if access.token else {}
        futures: list[Future[tuple[list[dict[str, Any]], int, bool]]] = [
            self.pool.submit(self._search, base, query, headers, deadline) for _, query in tasks
        ]
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            error = future.exception()
            if error is not None:
                raise (
                    error
                    if isinstance(error, PrefetchUnavailable)
                    else PrefetchUnavailable(f"the FHIR server could not be read ({type(error).__name__})")
                )
        if pending:
            raise PrefetchUnavailable(f"the FHIR server did not answer within {self.timeout_s:g} s")
        for (key, _), future in zip(tasks, futures, strict=True):
            resources, requests_sent, capped = future.result()
            out.resources.extend((key, r) for r in resources)
            out.fetched += requests_sent
            if capped:
                out.capped.append(key)

    def _search(
        self, base: str, query: str, headers: dict[str, str], deadline: float
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """One read or search, its next pages followed (on the same server) up to the cap."""
        url = query if query.startswith(("http://", "https://")) else f"{base}/{query}"
        resources: list[dict[str, Any]] = []
        pages = 0
        while url:
            if not (url == base or url.startswith(base + "/") or url.startswith(base + "?")):
                raise PrefetchUnavailable("a next-page link leads off the fhirServer; not followed")
            if pages >= self.page_cap:
                return resources, pages, True
            body = self._get(url, headers, deadline)
            pages += 1
            if body is None:  # a read of a resource the server does not have
                return resources, pages, False
            if body.get("resourceType") != "Bundle":
                resources.append(body)
                return resources, pages, False
            resources.extend(_bundle_resources(body))
            url = _next_link(body) or ""
        return resources, pages, False

    def _get(self, url: str, headers: dict[str, str], deadline: float) -> dict[str, Any] | None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PrefetchUnavailable(f"the FHIR server did not answer within {self.timeout_s:g} s")
        try:
            answer = self.session.get(url, headers=headers, timeout=left)
        except requests.Timeout as exc:
            raise PrefetchUnavailable(f"the FHIR server did not answer within {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise PrefetchUnavailable(f"the FHIR server could not be reached ({type(exc).__name__})") from exc
        if answer.status_code in (404, 410) and "?" not in url:
            return None
        if answer.status_code != 200:
            raise PrefetchUnavailable(f"the FHIR server answered {answer.status_code}")
        try:
            body = orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise PrefetchUnavailable("the FHIR server answered with something that is not JSON") from exc
        if not isinstance(body, dict) or body.get("resourceType") == "OperationOutcome":
            raise PrefetchUnavailable("the FHIR server answered with an OperationOutcome instead of data")
        return body


_ABSENT = object()
_READ_TYPES = ("Patient", *(rtype for rtype, _, _ in SEARCHES.values()), "Medication")


def scope_gaps(scope: Any) -> list[str]:
    """The resource types fhir-ns reads that a SMART scope string does not let it read and search: v1 scopes
    (`patient/Observation.read`, `user/*.read`, `.*`) and v2 scopes (`patient/Observation.rs`, `.cruds`) both
    count; a v2 scope with a query (`?category=...`) is taken as partial, so not as covering its type."""
    if not isinstance(scope, str):
        return []  # no scope stated: let the server decide
    granted: set[str] = set()
    for item in scope.split():
        context, slash, rest = item.partition("/")
        if not slash or context not in ("patient", "user", "system"):
            continue
        rtype, dot, access = rest.partition(".")
        if not dot or "?" in access:
            continue
        if access in ("read", "*") or ("r" in access and "s" in access and set(access) <= set("cruds")):
            granted.add(rtype)
    if "*" in granted:
        return []
    return [t for t in _READ_TYPES if t not in granted]


def _resource_type(query: str, server: str) -> str:
    """The resource type a query or next-page URL reads."""
    path = query.removeprefix(server.rstrip("/")).lstrip("/")
    return path.split("?", 1)[0].split("/", 1)[0]


def _bundle_resources(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The resources of a searchset Bundle (matches and includes; the server's OperationOutcome notes left out)."""
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") not in (None, "OperationOutcome"):
            yield resource


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None
