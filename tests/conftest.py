"""Shared fixtures: a real FHIR server (sekmet-fhir) started on 127.0.0.1 for the tests that need one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cds_client import CdsService
from tests.fhir_server import FhirServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., FhirServer]]:
    """Start a fresh server (optionally with auth settings); every server started is stopped after the test."""
    servers: list[FhirServer] = []

    def start(server_auth: dict[str, Any] | None = None, detectedissue_params: bool = True) -> FhirServer:
        server = FhirServer(tmp_path / f"server{len(servers)}", server_auth, detectedissue_params)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fhir_server(start_server: Callable[..., FhirServer]) -> FhirServer:
    return start_server()


@pytest.fixture
def browser() -> Iterator[object]:
    """A real headless Chromium (Debian's), driven by Selenium: pages are checked the way a person sees them."""
    from tests.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture
def start_cds(tmp_path: Path) -> Iterator[Callable[..., CdsService]]:
    """Start `fhir-ns serve` (a real uvicorn process on 127.0.0.1) trusting one EHR; stopped after the test."""
    from tests.test_serve_auth import SigningKey

    services: list[CdsService] = []

    def start(fhir_servers: tuple[str, ...] = (), **settings: Any) -> CdsService:
        service = CdsService(tmp_path / f"cds{len(services)}", SigningKey.new("ES384"), fhir_servers, **settings)
        services.append(service)
        return service

    yield start
    for service in services:
        service.stop()


@pytest.fixture
def cds(start_cds: Callable[..., CdsService]) -> CdsService:
    return start_cds()


ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts"


@pytest.fixture
def artefact(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """A path under test-artefacts/ (kept after the run, not committed) for what a person should look at:
    the screenshots of the page tests, named after the test."""

    def path(name: str) -> Path:
        ARTEFACTS.mkdir(exist_ok=True)
        return ARTEFACTS / f"{request.node.name}-{name}"

    return path
