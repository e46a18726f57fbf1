"""The dashboard may not be framed by another site (clickjacking: a page of another origin that
shows the dashboard in a hidden frame could lure clicks onto Start or Cancel).

``dashboard/serve.py`` is the served entry point: it wraps the pages in an ASGI middleware that adds
``X-Frame-Options: SAMEORIGIN`` and ``Content-Security-Policy: frame-ancestors 'self'`` to every HTTP
response (same origin, because Streamlit draws its own components in frames of the same server).
Served without it (``streamlit run dashboard/app.py``), the pages refuse to run and name the command.
The slow tests start the real server from another folder and load it into a frame of another origin
in Chromium.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import urllib.request

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from tests.headless_chromium import chromium_or_skip, launch
from tests.test_dashboard_safety import (
    APP,
    REPO,
    free_port,
    listening_addresses,
    start,
    stop,
    wait_healthy,
)

SERVE = str(REPO / "dashboard" / "serve.py")
UNGUARDED = "sends no anti-framing headers"


def run_middleware(scope_type: str) -> list[dict]:
    """Send one response through the guard around a bare ASGI app; return what reached the wire."""
    from dashboard.frame_guard import FrameGuard

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        sent.append(message)

    asyncio.run(FrameGuard(inner)({"type": scope_type}, receive, send))
    return sent


def test_every_http_response_gets_the_anti_framing_headers():
    start_message, body = run_middleware("http")
    headers = dict(start_message["headers"])
    assert headers[b"x-frame-options"] == b"SAMEORIGIN"
    assert headers[b"content-security-policy"] == b"frame-ancestors 'self'"
    assert headers[b"a"] == b"1"  # the app's own headers stay
    assert body == {"type": "http.response.body", "body": b"ok"}


def test_other_scopes_pass_through_untouched():
    (start_message, _body) = run_middleware("websocket")
    assert start_message["headers"] == [(b"a", b"1")]


@pytest.fixture
def served_plain(monkeypatch):
    """Pretend a plain ``streamlit run dashboard/app.py`` server runs this AppTest."""
    from dashboard import frame_guard

    monkeypatch.setattr(st_config, "_server_mode", "starlette-managed")
    monkeypatch.setattr(frame_guard, "ACTIVE", False)  # an earlier test may have built a guard


def test_served_without_the_guard_the_pages_refuse_and_name_the_command(served_plain):
    at = AppTest.from_file(APP, default_timeout=60).run()
    shown = "\n".join(e.value for e in at.error)
    assert UNGUARDED in shown
    assert "dashboard/serve.py" in shown
    assert not at.text_input  # neither the sidebar nor a page ran


def test_served_through_the_guard_the_pages_run(served_plain, monkeypatch):
    from dashboard import frame_guard

    monkeypatch.setattr(frame_guard, "ACTIVE", True)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not any(UNGUARDED in e.value for e in at.error)
    assert at.text_input(key="runs_dir")


# --- the real server -----------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """``streamlit run dashboard/serve.py`` with no flags, started from a folder outside the
    checkout: only the project's own settings apply."""
    port = free_port()
    server = start(tmp_path, port, script=SERVE)
    try:
        wait_healthy(port, server)
        yield port
    finally:
        stop(server)


@pytest.mark.slow
def test_the_served_entry_binds_loopback_and_sends_the_headers(served):
    assert listening_addresses(served) == {"127.0.0.1"}
    for path in ("/", "/_stcore/health"):
        with urllib.request.urlopen(f"http://127.0.0.1:{served}{path}", timeout=10) as response:
            assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
            assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"


@pytest.mark.slow
def test_a_page_of_another_origin_cannot_frame_it(served, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    # Another origin: another port on this machine, serving a page that frames the dashboard.
    (tmp_path / "frame.html").write_text(
        f'<iframe id="f" src="http://127.0.0.1:{served}/" width="800" height="600"></iframe>'
    )
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = launch(p, chromium)
            page = browser.new_page()
            refused = []
            page.on("console", lambda m: refused.append(m.text) if "frame" in m.text else None)
            page.goto(f"http://127.0.0.1:{other.server_address[1]}/frame.html", timeout=60_000)
            page.wait_for_timeout(3_000)
            framed = page.frame_locator("#f")
            assert framed.locator('[data-testid="stApp"]').count() == 0
            assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in refused)
            browser.close()
    finally:
        other.shutdown()
