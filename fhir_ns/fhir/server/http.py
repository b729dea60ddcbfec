"""One HTTP client for FHIR servers: timeouts, retries with backoff, Retry-After, one re-authentication.

Retries, auth and timeouts live here, never at call sites. Every write fhir-ns sends is idempotent
(conditional update on a deterministic identifier, or PUT to a deterministic id), so POSTed
transactions are retried too. Nothing here logs a token, a header or a body.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import orjson
import requests

from fhir_ns import __version__
from fhir_ns.errors import AuthError, ServerError, UnreachableError
from fhir_ns.fhir.server.auth import Auth, NoAuth
from fhir_ns.fhir.server.connection import ConnectionFailure, diagnose

log = logging.getLogger("fhir_ns.server")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
FHIR_JSON = "application/fhir+json"
STRICT = {"Prefer": "handling=strict"}  # unknown search parameters are errors, not silently ignored


@dataclass(slots=True)
class Stats:
    """What the client did: requests, retries, and seconds spent waiting on the server or backing off."""

    requests: int = 0
    retries: int = 0
    server_seconds: float = 0.0
    backoff_seconds: float = 0.0


@dataclass(slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 120.0


@dataclass(slots=True)
class FhirClient:
    """A FHIR REST client over a `requests.Session` (pass `session` to mount a transport for tests)."""

    base_url: str
    auth: Auth = field(default_factory=NoAuth)
    timeout: tuple[float, float] = (10.0, 120.0)
    verify: bool | str = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    stats: Stats = field(default_factory=Stats)
    on_retry: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/") + "/"
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": f"fhir-ns/{__version__}"})

    # -- the verbs the job uses ------------------------------------------------------------------
    def capabilities(self) -> dict[str, Any]:
        return self.request("GET", "metadata").json_body

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        """A resource by id, or None when the server says 404/410."""
        try:
            return self.request("GET", f"{rtype}/{rid}").json_body
        except ServerError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def search(self, rtype: str, params: dict[str, str]) -> Iterator[Response]:
        """Every page of a search, following `next` links exactly as the server gives them."""
        response = self.request("GET", rtype, params=params, headers=STRICT)
        while True:
            yield response
            next_url = next(
                (link.get("url") for link in response.json_body.get("link", []) if link.get("relation") == "next"),
                None,
            )
            if not next_url:
                return
            response = self.request("GET", next_url, headers=STRICT)

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "", body=bundle).json_body

    # -- the mechanism ----------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base_url, path)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send with retries on 408/429/5xx, timeouts and connection errors (bounded; a refused connection
        once, an unknown host or a TLS failure never), re-authenticating once on 401."""
        url = self.url(path)
        data = orjson.dumps(body) if body is not None else None
        headers = {**(headers or {}), **({"Content-Type": FHIR_JSON} if data is not None else {})}
        waited = 0.0
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            self.stats.requests += 1
            headers.update(self.auth.headers())
            started = time.perf_counter()
            try:
                raw = self.session.request(
                    method, url, params=params, data=data, headers=headers, timeout=self.timeout, verify=self.verify
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                self.stats.server_seconds += time.perf_counter() - started
                failure = self._diagnose(exc, url)
                delay = self._delay(attempt, None)
                if (
                    attempt > failure.retries
                    or attempt >= self.retry.max_attempts
                    or waited + delay > self.retry.max_total_wait
                ):
                    if failure.unreachable:
                        raise UnreachableError(failure.message(attempt)) from exc
                    raise ServerError(f"{method} {_safe(url)}: {failure.reason} after {attempt} attempt(s)") from exc
                waited += self._back_off(delay, f"{failure.reason} on {method} {_safe(url)}")
                continue
            except requests.RequestException as exc:  # a URL that cannot be sent (from a server's link), ...
                raise ServerError(f"{method} {_safe(url)}: {exc}") from exc
            self.stats.server_seconds += time.perf_counter() - started
            status = raw.status_code
            if status == 401 and not reauthenticated and self.auth.can_refresh:
                reauthenticated = True
                self.auth.refresh()
                continue
            if status in RETRY_STATUSES:
                delay = self._delay(attempt, raw.headers.get("Retry-After"))
                if attempt >= self.retry.max_attempts or waited + delay > self.retry.max_total_wait:
                    raise ServerError(
                        f"{method} {_safe(url)}: HTTP {status} after {attempt} attempt(s) "
                        f"({waited:.0f} s of backoff): {_outcome_text(raw)}",
                        status,
                    )
                waited += self._back_off(delay, f"HTTP {status} on {method} {_safe(url)}")
                continue
            if status in (401, 403):
                raise AuthError(f"{method} {_safe(url)}: HTTP {status}: {_outcome_text(raw)}")
            if status >= 400:
                raise ServerError(f"{method} {_safe(url)}: HTTP {status}: {_outcome_text(raw)}", status)
            return Response(raw)

    def _diagnose(self, exc: requests.RequestException, url: str) -> ConnectionFailure:
        if url.startswith(self.base_url):
            return diagnose(exc, self.base_url.rstrip("/"), "--base-url")
        # only the server's own links (paging) lead elsewhere
        return diagnose(exc, _safe(url), "the server's configured base URL (it gave this address in a link)")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return min(max(seconds, 0.0), self.retry.max_total_wait)
        return min(self.retry.base_delay * 2 ** (attempt - 1), self.retry.max_delay)

    def _back_off(self, delay: float, why: str) -> float:
        self.stats.retries += 1
        self.stats.backoff_seconds += delay
        log.info("retrying in %.1f s after %s", delay, why)
        if self.on_retry:
            self.on_retry(why)
        self.sleep(delay)
        return delay


class Response:
    """A successful answer: its JSON body (decoded once) and the headers the job needs."""

    def __init__(self, raw: requests.Response) -> None:
        self.raw = raw
        self._body: Any = None

    @property
    def json_body(self) -> dict[str, Any]:
        if self._body is None:
            try:
                self._body = orjson.loads(self.raw.content) if self.raw.content else {}
            except orjson.JSONDecodeError as exc:
                raise ServerError(
                    f"{_safe(self.raw.url)}: the server's answer is not JSON ({exc})", self.raw.status_code
                ) from exc
        if not isinstance(self._body, dict):
            raise ServerError(f"{_safe(self.raw.url)}: the server's answer is not a JSON object", self.raw.status_code)
        return self._body

    @property
    def server_date(self) -> str | None:
        """The server's clock from the Date header, as a FHIR instant."""
        value = self.raw.headers.get("Date")
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            return None


def _retry_after_seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _outcome_text(raw: requests.Response) -> str:
    """The OperationOutcome's diagnostics, or the first characters of a non-FHIR body."""
    try:
        body = orjson.loads(raw.content)
    except orjson.JSONDecodeError:
        text = raw.text.strip().replace("\n", " ")
        return text[:200] or raw.reason or "no details"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue", []):
            words = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
            where = ", ".join(issue.get("expression") or issue.get("location") or [])
            parts.append(f"{issue.get('severity', 'error')}: {words}" + (f" at {where}" if where else ""))
        return "; ".join(parts) or "OperationOutcome without issues"
    return raw.reason or "no details"


def _safe(url: str) -> str:
    """A URL for messages: without its query (search values can identify a patient)."""
    return url.split("?", 1)[0]
