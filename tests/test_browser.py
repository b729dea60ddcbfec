"""The browser the page tests use is a real one: it renders a page served on loopback and takes its picture."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGE = "<!doctype html><title>fhir-ns</title><h1 id='t'>Steroid-resistant</h1><p style='width:300px;height:80px;background:#000'></p>"


def test_chromium_renders_a_page_served_on_loopback(
    browser: Any, tmp_path: Path, artefact: Callable[[str], Path]
) -> None:
    (tmp_path / "index.html").write_text(PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        assert browser.title == "fhir-ns"
        assert browser.find_element("id", "t").text == "Steroid-resistant"
        shot = artefact("page.png")
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.shutdown()
