"""The CDS Hooks 2.0 service as a FastAPI application: discovery, the services, feedback, the timeline page.

Each call: its JWT verified (fhir_ns.serve.auth), its data gathered (prefetch, else the client's FHIR
server), the patient evaluated by the one pipeline every command uses (read -> timeline -> rules), and
the result answered as cards. Logs name the service, the status and the time taken; never a token, a
JWT, a patient id or a URL with a link token in it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from fhir_ns.errors import PatientNotFoundError, PatientRefusedError
from fhir_ns.fhir.writer import Settings
from fhir_ns.pipeline import Config, explain_resources
from fhir_ns.rules.result import PatientResult
from fhir_ns.serve.auth import Caller, Unauthorized, Verifier, fhir_server_allowed, load_auth_config
from fhir_ns.serve.cards import Card, finding_card, patient_cards, refused_card, written
from fhir_ns.serve.config import ServeConfig
from fhir_ns.serve.feedback import FeedbackStore, Outcome
from fhir_ns.serve.links import LinkSigner, load_link_signer
from fhir_ns.serve.orders import DraftOrders, checked_drafts, order_findings, with_drafts
from fhir_ns.serve.page import EXPIRED, HEADERS, link_payload, render_page
from fhir_ns.serve.prefetch import Fetcher, FhirAccess, PrefetchUnavailable, scope_gaps, templates
from fhir_ns.serve.services import SERVICES, Service
from fhir_ns.timeline.timeline import Timeline

log = logging.getLogger("fhir_ns.serve")
CONFIG_ENV = "FHIR_NS_SERVE_CONFIG"  # how `fhir-ns serve` tells each worker process its configuration file
NO_CARDS = orjson.dumps({"cards": []})


class BadRequest(Exception):
    """A call that is not a CDS Hooks request this service can answer (400); the message names no patient."""


@dataclass(slots=True)
class State:
    """What every request shares: configuration, rules, verifier, links, feedback store, fetcher."""

    config: ServeConfig
    pipeline: Config
    verifier: Verifier
    links: LinkSigner
    store: FeedbackStore
    fetcher: Fetcher
    writer: Settings

    @classmethod
    def open(cls, config: ServeConfig) -> State:
        pipeline = Config.load(config.mappings)
        return cls(
            config,
            pipeline,
            Verifier(load_auth_config(config.auth, config.base_dir)),
            load_link_signer(config.links, config.base_dir, config.state_dir),
            FeedbackStore(config.state_dir / "cds-feedback.sqlite", config.snooze_days),
            Fetcher(config.prefetch_timeout_s, config.page_cap),
            Settings(),
        )

    def close(self) -> None:
        self.fetcher.close()
        self.store.close()


def create_app(config: ServeConfig) -> FastAPI:
    """The service, with its state opened (and checked) now: a broken configuration fails at start, not on a call."""
    state = State.open(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="fhir-ns CDS Hooks service", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.fhir_ns = state
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    app.add_middleware(AccessLog)

    @app.get("/cds-services")
    async def discovery(request: Request) -> Response:
        if not await run_in_threadpool(_verified, state, request, state.config.services_url):
            return _unauthorized()
        services = [s.discovery(config.page_size) for s in SERVICES.values()]
        return _json({"services": services})

    @app.post("/cds-services/{service_id}")
    async def call(service_id: str, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        body = await request.body()
        return await run_in_threadpool(_call, state, service_id, authorization, body)  # one hop to a worker thread

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        caller = await run_in_threadpool(
            _verified, state, request, f"{state.config.services_url}/{service_id}/feedback"
        )
        if caller is None:
            return _unauthorized()
        if service_id not in SERVICES:
            return _json({"error": f"no CDS service {service_id!r}"}, 404)
        try:
            outcomes = _outcomes(await request.body())
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        known = await run_in_threadpool(state.store.record, service_id, outcomes)
        log.info("%s: feedback on %d card(s), %d known", service_id, len(outcomes), known)
        return Response(status_code=200)

    @app.get("/timeline/{token}")
    async def timeline_page(token: str) -> Response:
        opened = await run_in_threadpool(state.links.resolve, token)
        if opened is None:
            return HTMLResponse(EXPIRED, status_code=404, headers=HEADERS)
        page = await run_in_threadpool(render_page, opened["payload"], state.pipeline)
        return HTMLResponse(page, headers=HEADERS)

    return app


def app_from_environment() -> FastAPI:
    """The application of one worker process of `fhir-ns serve` (its configuration file named in CONFIG_ENV)."""
    path = os.environ.get(CONFIG_ENV)
    return create_app(ServeConfig.load(Path(path) if path else None))


def _call(state: State, service_id: str, authorization: str | None, body: bytes) -> Response:
    """One service call, verified and answered in the worker thread it was handed to."""
    service = SERVICES.get(service_id)
    try:
        caller = state.verifier.verify(authorization, f"{state.config.services_url}/{service_id}")
    except Unauthorized:
        return _unauthorized()
    if service is None:
        return _json({"error": f"no CDS service {service_id!r}"}, 404)
    try:
        return _answer(state, service, caller, body)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    except PrefetchUnavailable as exc:
        log.warning("%s: data not available: %s", service.id, exc)
        return _json({"error": f"the patient's data could not be had: {exc}"}, 412)


class AccessLog:
    """One log line per request: method, route template (a link token in the URL is never logged), status and
    time. Plain ASGI, so a call pays for no extra task or body copy."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "(no route)")
            log.info("%s %s %d %.1f ms", scope["method"], path, status, (time.perf_counter() - started) * 1000)


def _verified(state: State, request: Request, endpoint_url: str) -> Caller | None:
    try:
        return state.verifier.verify(request.headers.get("authorization"), endpoint_url)
    except Unauthorized:
        return None


def _unauthorized() -> Response:
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _answer(state: State, service: Service, caller: Caller, body: bytes) -> Response:
    """One service call, from its JSON body to its cards."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the request body is not JSON") from exc
    if not isinstance(request, dict) or request.get("hook") != service.hook:
        raise BadRequest(f"this service answers the {service.hook} hook")
    context = request.get("context")
    if not isinstance(context, dict):
        raise BadRequest("context is missing")
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise BadRequest("context.patientId is missing")
    drafts: DraftOrders | None = None
    if service.orders:
        drafts = checked_drafts(context.get("draftOrders"), state.pipeline, context.get("selections"))
        if not drafts.exposures:
            return Response(NO_CARDS, media_type="application/json")  # nothing fhir-ns checks is being ordered
    access = _access(state, caller, request)
    gathered = state.fetcher.gather(request.get("prefetch"), templates(state.config.page_size), patient_id, access)
    resources = with_drafts(gathered.resources, drafts) if drafts else gathered.resources
    as_of = _as_of(drafts)
    try:
        timeline, result = explain_resources(
            resources, state.pipeline, patient_id, as_of, state.config.ruleset, planned=drafts is not None
        )
    except PatientNotFoundError:
        return Response(NO_CARDS, media_type="application/json")  # nothing at all on record for the patient
    except PatientRefusedError as exc:
        cards = [refused_card(patient_id, str(exc))] if not service.orders else []
        return _issued(state, service, patient_id, cards)
    if gathered.capped:
        result.notes.append(
            f"only the newest {state.config.page_cap} page(s) of {', '.join(gathered.capped)} were read: older "
            "history may be missing"
        )
    if drafts is None:
        if not _nephrotic(result):
            return Response(NO_CARDS, media_type="application/json")
        link = _link(state, timeline, result)
        return _issued(state, service, patient_id, patient_cards(result, state.writer, link))
    cards = _order_cards(state, timeline, result, drafts)
    return _issued(state, service, patient_id, cards)


def _access(state: State, caller: Caller, request: dict[str, Any]) -> FhirAccess:
    """Where data the prefetch lacks may be fetched: the fhirServer, if the caller's issuer may name it, and
    with the token, if its scope (SMART v1 `.read` or v2 `.rs`) covers what fhir-ns reads."""
    server = request.get("fhirServer")
    authorization = request.get("fhirAuthorization")
    token = authorization.get("access_token") if isinstance(authorization, dict) else None
    if server is not None and not isinstance(server, str):
        raise BadRequest("fhirServer is not a URL")
    if token is not None and not isinstance(token, str):
        raise BadRequest("fhirAuthorization.access_token is not a string")
    gaps = scope_gaps(authorization.get("scope")) if isinstance(authorization, dict) else []
    return FhirAccess(server, token, server is not None and fhir_server_allowed(caller, server), tuple(gaps))


def _as_of(drafts: DraftOrders | None) -> date:
    """Today; for orders, the last day the orders run to when later (a cumulative dose counts the whole course)."""
    today = date.today()
    end = drafts.ends() if drafts else None
    return max(today, end) if end else today


def _nephrotic(result: PatientResult) -> bool:
    """Whether the record shows nephrotic evidence at all: anything but the 'no nephrotic evidence' answer
    (insufficient data citing nothing, no finding, no nephrotic syndrome Condition)."""
    return bool(
        result.findings
        or result.conditions
        or any(c.code != "insufficient-data" or c.evidence for c in result.classifications)
    )


def _link(state: State, timeline: Timeline, result: PatientResult) -> dict[str, str]:
    token = state.links.issue(result.patient_id, link_payload(timeline.facts, result.as_of, state.config.ruleset))
    return {
        "label": "Timeline and explanation",
        "url": f"{state.config.public_url}/timeline/{token}",
        "type": "absolute",
    }


def _order_cards(state: State, timeline: Timeline, result: PatientResult, drafts: DraftOrders) -> list[Card]:
    warned = order_findings(timeline, result, drafts)
    if not warned:
        return []
    link = _link(state, timeline, result)
    issues = written(result, state.writer).findings  # in the order of result.findings
    return [
        finding_card(
            result,
            finding,
            issues[result.findings.index(finding)],
            link,
            state.writer,
            f"{timeline.terminology.drug_name(order.drug)} order: ",
        )
        for order, finding in warned
    ]


def _issued(state: State, service: Service, patient_id: str, cards: list[Card]) -> Response:
    """The cards not snoozed for the patient, remembered for feedback."""
    snoozed = state.store.snoozed(patient_id, (c.key for c in cards))
    shown = [c for c in cards if c.key not in snoozed]
    state.store.issue(service.id, patient_id, ((c.uuid, c.key) for c in shown))
    return _json({"cards": [c.json for c in shown]})


def _outcomes(body: bytes) -> list[Outcome]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the feedback body is not JSON") from exc
    items = data.get("feedback") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback must be a non-empty array")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("card"), str):
            raise BadRequest("each feedback item names its card (card.uuid)")
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise BadRequest("outcome must be accepted or overridden")
        stamp = item.get("outcomeTimestamp")
        if not isinstance(stamp, str) or not _is_instant(stamp):
            raise BadRequest("outcomeTimestamp must be an ISO timestamp")
        override: dict[str, Any] = item["overrideReason"] if isinstance(item.get("overrideReason"), dict) else {}
        reason: dict[str, Any] = (
            override["reason"] if isinstance(override.get("reason"), dict) else {}
        )  # display may be absent
        accepted = item.get("acceptedSuggestions") or []
        out.append(
            Outcome(
                item["card"],
                outcome,
                stamp,
                _text(reason.get("system")),
                _text(reason.get("code")),
                _text(override.get("userComment")),
                tuple(str(a.get("id")) for a in accepted if isinstance(a, dict) and a.get("id")),
            )
        )
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_instant(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
