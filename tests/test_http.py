"""Faults a real server will not produce on demand, injected at the HTTP transport (and only there)."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import requests
from requests.adapters import BaseAdapter

from fhir_ns.errors import AuthError, ServerError, UnreachableError
from fhir_ns.fhir.server.auth import Auth, BearerAuth
from fhir_ns.fhir.server.http import FhirClient, RetryPolicy

BASE = "http://fhir.test/fhir"
Step = Callable[[requests.PreparedRequest], requests.Response] | Exception


class Scripted(BaseAdapter):
    """A transport that answers each request with the next scripted response or exception."""

    def __init__(self, steps: list[Step]) -> None:
        super().__init__()
        self.steps = list(steps)
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(request)

    def close(self) -> None:
        pass


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Step:
    def make(request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = orjson.dumps(body) if body is not None else b""
        response.headers.update(headers or {})
        response.url = request.url or ""
        response.request = request
        return response

    return make


def outcome(text: str, where: str = "") -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": "processing", "diagnostics": text}
    if where:
        issue["expression"] = [where]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def client(steps: list[Step], auth: Auth | None = None, **retry: float) -> tuple[FhirClient, Scripted, list[float]]:
    slept: list[float] = []
    transport = Scripted(steps)
    session = requests.Session()
    session.mount("http://", transport)
    c = FhirClient(
        BASE, session=session, sleep=slept.append, retry=RetryPolicy(**retry), **({"auth": auth} if auth else {})
    )
    return c, transport, slept


def test_429_with_retry_after_waits_as_told_then_succeeds() -> None:
    c, transport, slept = client(
        [answer(429, outcome("slow down"), {"Retry-After": "7"}), answer(200, {"resourceType": "CapabilityStatement"})]
    )
    assert c.capabilities()["resourceType"] == "CapabilityStatement"
    assert slept == [7.0] and c.stats.retries == 1 and len(transport.seen) == 2


def test_retry_after_as_an_http_date_is_understood() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    c, _, slept = client([answer(503, None, {"Retry-After": when}), answer(200, {})])
    c.capabilities()
    assert 3.0 <= slept[0] <= 6.0


def test_503_that_never_ends_gives_up_within_the_bound_with_the_servers_words() -> None:
    c, transport, slept = client([answer(503, outcome("maintenance window"))] * 20, max_total_wait=10.0)
    with pytest.raises(ServerError) as error:
        c.capabilities()
    assert "HTTP 503 after" in str(error.value) and "maintenance window" in str(error.value)
    assert sum(slept) <= 10.0 and error.value.status == 503
    assert len(transport.seen) < 20


def test_exponential_backoff_without_retry_after() -> None:
    c, _, slept = client([answer(502), answer(504), answer(500), answer(200, {})], base_delay=0.5)
    c.capabilities()
    assert slept == [0.5, 1.0, 2.0]


def test_a_timeout_is_retried() -> None:
    c, _, slept = client([requests.ReadTimeout("read timed out"), answer(200, {"ok": True})])
    assert c.capabilities() == {"ok": True} and len(slept) == 1


def test_a_connection_dropped_mid_page_is_retried_and_paging_continues_with_the_next_link_as_given() -> None:
    odd_next = f"{BASE}/Observation?_getpages=abc%3D%3D&_page=2&patient=Patient%2Fp1"
    page1 = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Observation", "id": "1"}}],
        "link": [{"relation": "next", "url": odd_next}],
    }
    page2 = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Observation", "id": "2"}}],
    }
    c, transport, _ = client([answer(200, page1), requests.ConnectionError("connection reset"), answer(200, page2)])
    pages = [p.json_body for p in c.search("Observation", {"patient": "Patient/p1"})]
    assert [e["resource"]["id"] for p in pages for e in p["entry"]] == ["1", "2"]
    assert transport.seen[-1].url == odd_next and transport.seen[-2].url == odd_next
    assert transport.seen[0].headers["Prefer"] == "handling=strict"


def test_401_re_authenticates_once_then_succeeds() -> None:
    class Counting(Auth):
        can_refresh = True

        def __init__(self) -> None:
            self.refreshed = 0

        def headers(self) -> dict[str, str]:
            return {"Authorization": f"Bearer t{self.refreshed}"}

        def refresh(self) -> None:
            self.refreshed += 1

    auth = Counting()
    c, transport, _ = client([answer(401, outcome("expired")), answer(200, {})], auth=auth)
    c.capabilities()
    assert auth.refreshed == 1 and transport.seen[1].headers["Authorization"] == "Bearer t1"


def test_a_second_401_is_an_auth_error_that_never_shows_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_UNDER_TEST", "very-secret-value")
    c, transport, _ = client(
        [answer(401, outcome("bad token")), answer(401, outcome("bad token"))], auth=BearerAuth(env="TOKEN_UNDER_TEST")
    )
    with pytest.raises(AuthError) as error:
        c.capabilities()
    assert "HTTP 401" in str(error.value) and "very-secret-value" not in str(error.value)
    assert transport.seen[0].headers["Authorization"] == "Bearer very-secret-value"


def test_errors_carry_the_operation_outcome_and_hide_the_query() -> None:
    c, _, _ = client([answer(400, outcome("unknown code system", "Observation.code"))])
    with pytest.raises(ServerError) as error:
        next(iter(c.search("Observation", {"patient": "Patient/secret-mrn-123"})))
    message = str(error.value)
    assert "HTTP 400" in message and "unknown code system at Observation.code" in message
    assert "secret-mrn-123" not in message


def test_read_of_a_missing_resource_is_none_and_a_non_json_answer_is_an_error() -> None:
    c, _, _ = client([answer(404, outcome("gone")), lambda r: _raw(r, b"<html>proxy error</html>")])
    assert c.read("Medication", "m1") is None
    with pytest.raises(ServerError, match="not JSON"):
        c.capabilities()


def _raw(request: requests.PreparedRequest, content: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = content
    response.url = request.url or ""
    return response


def test_a_refused_connection_is_tried_once_more_then_unreachable_naming_the_base_url() -> None:
    refused = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    c, transport, slept = client([refused] * 6)
    with pytest.raises(UnreachableError) as error:
        c.capabilities()
    assert len(transport.seen) == 2 and slept == [0.5]
    assert str(error.value).startswith(f"cannot connect to {BASE}: connection refused (after 2 attempts)")
    assert "check --base-url" in str(error.value)


def test_an_unreachable_paging_link_blames_the_servers_own_base_url_not_the_option() -> None:
    elsewhere = "http://internal-host:8080/fhir/Observation?page=2"
    page1 = {"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": elsewhere}]}
    unknown = requests.ConnectionError(socket.gaierror(-2, "Name or service not known"))
    c, transport, slept = client([answer(200, page1), unknown])
    with pytest.raises(UnreachableError) as error:
        list(c.search("Observation", {"patient": "Patient/p1"}))
    message = str(error.value)
    assert "the host name internal-host does not resolve" in message and "configured base URL" in message
    assert "page=2" not in message and slept == []  # the query stays out of messages; not retried


def test_a_connection_reset_is_still_retried_and_then_fails_only_that_request() -> None:
    reset = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    c, transport, slept = client([reset] * 3, max_attempts=3)
    with pytest.raises(ServerError) as error:
        c.capabilities()
    assert not isinstance(error.value, UnreachableError) and len(slept) == 2
    assert "Connection reset by peer after 3 attempt(s)" in str(error.value)


def test_a_body_cut_off_mid_transfer_is_retried() -> None:
    cut = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)")
    c, _, slept = client([cut, answer(200, {"ok": True})])
    assert c.capabilities() == {"ok": True} and len(slept) == 1


def test_a_paging_link_that_is_not_a_url_is_an_error_of_that_request_not_a_crash() -> None:
    page1 = {"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": "http://[::1/x"}]}
    c, transport, _ = client([answer(200, page1)])
    with pytest.raises(ServerError, match=r"GET http://\[::1/x: .*not a valid host"):
        list(c.search("Observation", {"patient": "Patient/p1"}))
    assert len(transport.seen) == 1  # requests refuses the URL before sending
