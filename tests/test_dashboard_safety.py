"""The dashboard binds to this machine only, from whatever folder it is started, and refuses to run
its pages when it is served on another address (it starts processes and has no login).

The in-process tests set the option the way a flag or an environment variable would; the slow ones
start the real server from /tmp (so no project-level .streamlit/ folder is in reach) and read the
kernel's table of listening sockets to see what it bound.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from tests.headless_chromium import chromium_or_skip, launch

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
REFUSAL = "serves only this machine"


def texts(at: AppTest) -> str:
    return "\n".join([e.value for e in at.error] + [m.value for m in at.markdown])


@pytest.fixture
def address(monkeypatch):
    """Set ``server.address`` for one in-process AppTest and put the old value back after."""
    old = st_config.get_option("server.address")

    def set_address(value):
        st_config.set_option("server.address", value)

    yield set_address
    st_config.set_option("server.address", old)


@pytest.mark.parametrize("bound", ["0.0.0.0", "::", "192.168.1.20", None])
def test_the_app_refuses_a_non_loopback_address(address, bound):
    address(bound)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert REFUSAL in texts(at)
    assert "--server.address 127.0.0.1" in texts(at)  # says how to start it safely
    assert not at.get("plotly_chart") and not at.text_input  # no page and no sidebar ran


@pytest.mark.parametrize("bound", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_app_runs_on_a_loopback_address(address, bound):
    address(bound)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert REFUSAL not in texts(at)
    assert at.text_input(key="runs_dir")  # the navigation shell ran


def test_an_explicit_opt_in_lets_it_serve_elsewhere(address, monkeypatch):
    address("0.0.0.0")
    monkeypatch.setenv("SDL_DASHBOARD_ALLOW_REMOTE", "1")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert REFUSAL not in texts(at)
    assert at.text_input(key="runs_dir")


# --- the real server, started from another folder ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            host, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A = TCP_LISTEN
                continue
            raw = bytes.fromhex(host)
            # The kernel writes each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
            family = socket.AF_INET if size == 4 else socket.AF_INET6
            found.add(socket.inet_ntop(family, words))
    return found


def start(
    cwd: Path, port: int, *flags: str, env: dict | None = None, script: str = APP
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port), *flags],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("the dashboard did not become healthy")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.mark.slow
def test_started_from_another_folder_it_binds_loopback_only(tmp_path):
    # No flags at all: only the app's own settings stand between it and every interface.
    port = free_port()
    server = start(tmp_path, port)
    try:
        wait_healthy(port, server)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        stop(server)


@pytest.mark.slow
def test_served_on_every_interface_the_page_refuses_to_run(tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    port = free_port()
    flags = ("--server.address", "0.0.0.0", "--server.headless", "true")
    server = start(tmp_path, port, *flags, "--browser.gatherUsageStats", "false")
    try:
        wait_healthy(port, server)
        assert listening_addresses(port) == {"0.0.0.0"}
        with sync_playwright() as p:
            browser = launch(p, chromium)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}", timeout=120_000)
            page.get_by_text(REFUSAL).first.wait_for(timeout=120_000)
            page.wait_for_selector(
                '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
            )
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            assert page.get_by_text("Runs folder").count() == 0
            browser.close()
    finally:
        stop(server)
