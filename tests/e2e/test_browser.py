"""The real dashboard in headless Chromium: every page loads, the main controls work, no exception shows.

Starts ``streamlit run dashboard/serve.py`` on a free port, drives each page with Playwright and saves a
screenshot of each step to ``screenshots/`` (gitignored). It opens on the embedded demo
(assets/demo) when it exists, else on synthetic runs. Skips only when Debian's chromium is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sdl import projection
from tests.headless_chromium import CHROMIUM_ARGS, chromium_or_skip
from tests.run_fixtures import write_sample_run, write_sample_runs

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "screenshots"
SHIPPED_SHOTS = REPO / "assets" / "screenshots"  # the README's pictures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the dashboard did not become healthy")


def has_demo() -> bool:
    """Whether the embedded demo is complete enough to drive (a half-built one is not)."""
    demo = REPO / "assets" / "demo"
    return demo.is_dir() and sum((p / "embeddings.npz").is_file() for p in demo.iterdir()) >= 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chromium = chromium_or_skip()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    work = tmp_path_factory.mktemp("browser")
    if not has_demo():
        demo = work / "demo"
        for run in write_sample_runs(demo, losses=("sdl", "all", "mulsupcon"), seeds=(0, 1), n=200):
            with pytest.MonkeyPatch.context() as patch:  # a stand-in map: no UMAP compile here
                patch.setattr(projection, "umap_2d", lambda x, p=None: np.asarray(x)[:, :2])
                projection.cached_projection(run)
        env["SDL_DASHBOARD_DEMO"] = str(demo)
    runs = work / "runs"
    # Two runs of the same data with both spaces and snapshots (the Space page's animation); their
    # maps made beforehand into the server's cache folder, so no UMAP compile is waited for.
    env[projection.CACHE_ENV] = str(work / "cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(projection.CACHE_ENV, str(work / "cache"))
        patch.setattr(projection, "umap_2d", lambda x, p=None: np.asarray(x)[:, :2])
        for name, loss in (("mine", "sdl"), ("mine-all", "all")):
            run = write_sample_run(runs / name, loss, n=60)
            for space in ("encoder", "head"):
                projection.cached_projection(run, space=space)
    (runs / "broken").mkdir()
    (runs / "broken" / "config.json").write_text("{oops")
    env["SDL_DASHBOARD_ROOTS"] = str(work)
    port = int(os.environ.get("SDL_E2E_PORT") or free_port())  # a fixed port on a shared host
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/serve.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield {"url": url, "runs": runs, "chromium": chromium, "log": work / "server.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=server["chromium"], headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


def settle(page, charts: int = 0, timeout: float = 120) -> None:
    """Wait until the script finished (no running indicator) and at least ``charts`` plots drew."""
    end = time.time() + timeout
    page.wait_for_selector('[data-testid="stApp"]')
    while time.time() < end:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        drawn = page.locator(".js-plotly-plot .main-svg").count()
        if not running and drawn >= charts:
            page.wait_for_timeout(800)  # let the last deltas paint
            if not page.locator('[data-testid="stStatusWidget"]').count():
                return
        page.wait_for_timeout(300)
    raise TimeoutError(f"the page did not settle with {charts} charts")


FULL_HEIGHT = """() => {
    const main = document.querySelector('[data-testid="stMain"]') || document.body;
    return Math.max(main.scrollHeight, document.body.scrollHeight);
}"""


def check(page, name: str) -> None:
    """Screenshot the whole page (Streamlit scrolls inside its main block, so grow the viewport)."""
    SHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = min(int(page.evaluate(FULL_HEIGHT)) + 40, 8000)
    page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    page.wait_for_timeout(1200)  # charts re-layout to the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"{name}: exception on the page: {errors.first.inner_text()[:800]}"


def use_runs_folder(page, folder: Path) -> None:
    box = page.get_by_label("Runs folder", exact=True).and_(page.locator("input"))
    box.fill(str(folder))
    box.press("Enter")


def test_relations_page(server, page):
    page.goto(server["url"])
    settle(page, charts=5)
    assert page.get_by_text("Relations").first.is_visible()
    check(page, "1-relations-run")
    page.get_by_text("Generate", exact=True).click()
    settle(page, charts=5)
    check(page, "1-relations-generated")
    page.get_by_text("Type", exact=True).click()
    settle(page, charts=5)
    check(page, "1-relations-typed")
    # a link reopens the same view: the source, the anchor and a variant in the URL
    page.goto(f"{server['url']}/?source=Generate&anchor=5&sdl.symmetric=True&sdl.dissimilarity=x")
    settle(page, charts=5)
    assert page.get_by_text("Anchor 5: its pairs").first.is_visible()
    assert page.get_by_text("sdl (symmetric=True)").first.is_visible()
    assert page.get_by_text("is ignored").first.is_visible()  # the bad value, with a note
    check(page, "1-relations-link")


def test_guided_tour(server, page):
    page.goto(server["url"])
    settle(page, charts=5)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Guided tour").first.is_visible()
    for step in ("1. Relations", "2. Space", "3. Compare", "4. Playground"):
        assert sidebar.get_by_text(step).first.is_visible()
    check(page, "0-tour")
    sidebar.get_by_role("button", name="Hide the tour").click()
    settle(page, charts=5)
    assert sidebar.get_by_role("button", name="Hide the tour").count() == 0
    assert sidebar.get_by_role("button", name="Show the guided tour").count() == 1
    check(page, "0-tour-hidden")


def test_training_page(server, page):
    page.goto(f"{server['url']}/training")
    settle(page)
    use_runs_folder(page, server["runs"])
    settle(page)
    page.get_by_label("Run name", exact=True).and_(page.locator("input")).fill("browser-run")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started").first.wait_for()
    page.get_by_role("button", name="Cancel").first.wait_for(timeout=60_000)
    check(page, "2-training-running")
    page.get_by_role("button", name="Cancel").first.click()
    page.get_by_text("Cancelled by you").first.wait_for(timeout=60_000)
    settle(page)
    check(page, "2-training-cancelled")


def test_compare_page(server, page):
    page.goto(f"{server['url']}/compare")
    settle(page, charts=1)
    check(page, "4-compare-demo")
    # runs that measured both spaces, on other data than the demo: their own section
    folder = server["runs"].parent / "compare-runs"
    write_sample_runs(folder, losses=("sdl", "all", "mulsupcon"), seeds=(0, 1), n=200)
    use_runs_folder(page, folder)
    settle(page, charts=4)
    assert page.get_by_text("On synthetic").first.is_visible()
    assert page.get_by_text("Relation AUCs per loss").first.is_visible()
    check(page, "4-compare")
    page.goto(f"{server['url']}/compare?space=encoder&space=nowhere")
    settle(page, charts=1)
    assert page.get_by_text("is ignored").first.is_visible()
    check(page, "4-compare-link")
