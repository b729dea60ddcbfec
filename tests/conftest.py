"""Shared fixtures: a real FHIR server (sekmet-fhir) started on 127.0.0.1 for the tests that need one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
