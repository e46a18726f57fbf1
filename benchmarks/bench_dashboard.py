"""How fast the real dashboard answers, in headless Chromium, on the embedded demo runs.

    .venv/bin/python benchmarks/bench_dashboard.py            # 5 repeats of every step
    .venv/bin/python benchmarks/bench_dashboard.py --quick    # 2 repeats, no import profile

Starts ``streamlit run dashboard/serve.py`` with the safety flags on a free port (as ``make
dashboard`` does) and drives it with Playwright in Debian's chromium. Measured:

- cold start: from launching the server to the first page settled;
- each page's first visit (its caches cold) and its warm switches (median of N);
- widget changes: Relations with a 256-item batch (change the anchor, toggle an SDL variant), Space
  with its 3 demo runs x 1,000 points (change the colour mode, click a point on a map).

"Settled" means Streamlit's script state, which the frontend writes on the app's root element
(``[data-testid="stApp"][data-test-script-state]``, the attribute Streamlit's own browser tests
wait on), went to "running" after the action and came back to "notRunning", with no new run
within a short quiet spell, plus two animation frames for the browser to paint. The running man
(``stStatusWidget``) is not used: it leaves through a 200 ms transition. Server time is the sum of
the script runs the action caused, from the app's own log (``SDL_DASHBOARD_TIMING``); bytes are
the WebSocket frames the browser received. Then, unless ``--quick``, the cost of importing what
each part of the dashboard imports (``python -X importtime``) and, from a headless AppTest run of
each page, the largest elements each page sends (figure specs, images, tables) in bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.test_space_browser import ISOLATED_JS  # noqa: E402
from tests.headless_chromium import CHROMIUM_ARGS  # noqa: E402  (after the path line)

SAFE_FLAGS = [
    "--server.headless",
    "true",
    "--server.address",
    "127.0.0.1",
    "--browser.gatherUsageStats",
    "false",
]
PAGES = ("Relations", "Training", "Space", "Compare", "Playground")
TARGETS = {"cold": 10.0, "switch": 1.5, "widget_server": 0.5}
QUIET_S = 0.35  # no new run this long after "notRunning": the action's last rerun is done
LIMIT_S = 180  # an action that has not settled by then is an error

# Records every script state the app's root element shows, with the page's clock. Each mutation
# record's old value is kept too, since several changes between two callbacks arrive together.
STATE_RECORDER = """
(() => {
  window.__st = [];
  const push = (state) => {
    const last = window.__st.length ? window.__st[window.__st.length - 1][0] : null;
    if (state && state !== last) window.__st.push([state, performance.now()]);
  };
  new MutationObserver(records => {
    for (const r of records) {
      if (r.type === 'attributes' && r.attributeName === 'data-test-script-state') push(r.oldValue);
    }
    const app = document.querySelector('[data-testid="stApp"]');
    push(app ? app.getAttribute('data-test-script-state') : null);
  }).observe(document, {
    attributes: true, attributeOldValue: true, childList: true, subtree: true,
    attributeFilter: ['data-test-script-state'],
  });
})();
"""
STATE_NOW = """
(mark) => {
  const app = document.querySelector('[data-testid="stApp"]');
  return {log: window.__st.slice(mark), now: performance.now(),
          state: app ? app.getAttribute('data-test-script-state') : null};
}
"""
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


@dataclass
class Step:
    """One measured action, repeated."""

    name: str
    group: str
    seconds: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


class Dashboard:
    """The server process, its timing log, and one browser page with its WebSocket byte count."""

    def __init__(self, browser, port: int, work: Path, env: dict[str, str]):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.timing = work / "timing.jsonl"
        self.timing.write_text("")
        self.log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in close()
        cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/serve.py", *SAFE_FLAGS]
        self.started = time.time()
        self.server = subprocess.Popen(
            [*cmd, "--server.port", str(port)],
            cwd=REPO,
            env={**os.environ, **env, "SDL_DASHBOARD_TIMING": str(self.timing)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})
        self.context.add_init_script(STATE_RECORDER)
        self.page = self.context.new_page()
        self.page.set_default_timeout(300_000)
        self.bytes = 0
        self.page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        def count(payload) -> None:
            self.bytes += len(payload)

        ws.on("framereceived", count)

    def wait_healthy(self, timeout: float = 300) -> float:
        end = time.time() + timeout
        while time.time() < end:
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.server.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return time.time() - self.started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the dashboard did not become healthy")

    def server_runs(self, since: float) -> list[dict]:
        lines = [json.loads(x) for x in self.timing.read_text().splitlines() if x.strip()]
        return [x for x in lines if x["end"] >= since]

    def wait_settled(self, mark: int, since: float, limit: float = LIMIT_S) -> float:
        """The page-clock time (ms) at which the app settled after ``mark``.

        The app ran if the page showed a state other than "notRunning" or the server logged a
        run that ended after ``since`` (a short run can finish before the page paints "running").
        """
        deadline = time.time() + limit
        seen_idle = None
        while time.time() < deadline:
            now = self.page.evaluate(STATE_NOW, mark)
            log = now["log"]
            ran = any(state != "notRunning" for state, _ in log) or self.server_runs(since)
            if ran and now["state"] == "notRunning":
                end = log[-1][1] if log and log[-1][0] == "notRunning" else None
                seen_idle = end if end is not None else (seen_idle or now["now"])
                if now["now"] - seen_idle >= QUIET_S * 1000:
                    self.page.evaluate(PAINTED)
                    return seen_idle
            else:
                seen_idle = None
            time.sleep(0.025)
        raise TimeoutError(f"the app did not settle in {limit} s; states seen: {log}")

    def measure(self, step: Step, action, limit: float = LIMIT_S) -> None:
        """Do ``action`` and record how long until the app settled, server time and bytes."""
        page = self.page
        mark = page.evaluate("window.__st.length")
        wall_start = time.time()
        bytes_start = self.bytes
        start = page.evaluate("performance.now()")
        action()
        settled = self.wait_settled(mark, wall_start, limit)
        page.wait_for_timeout(50)  # let the last frames' byte counts arrive
        runs = self.server_runs(wall_start)
        print(f"  {step.name}: {(settled - start) / 1000:.2f} s", file=sys.stderr, flush=True)
        step.seconds.append((settled - start) / 1000)
        step.server.append(sum(r["seconds"] for r in runs))
        step.runs.append(len(runs))
        step.received.append(self.bytes - bytes_start)
        errors = page.locator('[data-testid="stException"]')
        if errors.count():
            raise RuntimeError(f"{step.name}: exception on the page: {errors.first.inner_text()}")

    def close(self) -> None:
        self.context.close()
        self.server.terminate()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.log.close()


# --- driving the pages --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def go_to(dash: Dashboard, title: str):
    link = dash.page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first
    return link.click


def set_slider(dash: Dashboard, key: str, value: float) -> float:
    """Move the slider whose widget key is ``key`` to ``value`` with the keyboard (setup, not
    timed); returns the value the slider shows, after checking that it is ``value``.

    Streamlit's slider is a visually hidden ``<input type="range">`` inside the element that
    carries the key's class (``st-key-<key>``); a click on the track at a computed x lands off
    by the thumb's width. The keyboard is exact: each key press moves one step (arrows) or one
    page (PageUp/PageDown, about a tenth of the range) and is one rerun, so a long way goes by
    pages, measured on the first press, then by steps.

    Raises:
        RuntimeError: if the slider does not show ``value`` in the end.
    """
    page = dash.page
    box = page.locator(f".st-key-{key}").first
    thumb = box.locator('input[type="range"]').first
    thumb.wait_for(state="attached", timeout=60_000)
    step = float(thumb.get_attribute("step") or 1)
    page_size = None

    def shown() -> float:
        return float(box.locator('[data-testid="stSliderThumbValue"]').first.inner_text())

    for _ in range(6):
        now = float(thumb.input_value())
        if now == value:
            break
        up = value > now
        distance = abs(value - now)
        if page_size is None and distance >= 2 * step * 10:
            keys = ["PageUp" if up else "PageDown"]  # one page, to learn its size
        else:
            pages = int(distance // page_size) if page_size else 0
            arrows = round((distance - pages * (page_size or 0)) / step)
            keys = [("PageUp" if up else "PageDown")] * pages
            keys += [("ArrowRight" if up else "ArrowLeft")] * arrows

        def press(keys=keys) -> None:
            for k in keys:
                thumb.press(k)

        dash.measure(Step("slider", "setup"), press, limit=120)
        if keys[0].startswith("Page") and page_size is None:
            page_size = abs(float(thumb.input_value()) - now)
    if shown() != value:
        raise RuntimeError(f"the slider {key!r} shows {shown():g}, not {value:g}")
    return shown()


def batch_items(dash: Dashboard) -> int:
    """The number of items in the Relations page's batch, as its caption says."""
    caption = dash.page.get_by_text("Batch:", exact=False).first.inner_text()
    match = re.search(r"· (\d+) items ·", caption)
    if match is None:
        raise RuntimeError(f"no batch size in the caption {caption!r}")
    return int(match.group(1))


def relations_widgets(dash: Dashboard, repeats: int, steps: dict[str, Step], label: str) -> None:
    """Change the anchor and toggle SDL's symmetric variant, ``repeats`` times each."""
    page = dash.page
    anchor = page.locator('input[aria-label^="Anchor (item"]').first
    toggle = page.locator(".st-key-rel_opt_sdl_symmetric").get_by_text("symmetric").first
    if not toggle.is_visible():  # the variants' expander: opening it is no rerun
        page.locator('[data-testid="stExpander"] summary').filter(has_text="Loss variants").click()
    toggle.wait_for()
    moved, toggled = (
        f"Relations: change the anchor ({label})",
        f"Relations: toggle Symmetric ({label})",
    )
    for name in (moved, toggled):
        steps.setdefault(name, Step(name, "widget"))
    for i in range(repeats):
        value = str(10 + 17 * i)
        if anchor.input_value() == value:
            value = str(11 + 17 * i)
        dash.measure(
            steps[moved],
            lambda v=value: (anchor.fill(v), anchor.press("Enter")),
        )
        if anchor.input_value() != value:
            raise RuntimeError(f"the anchor shows {anchor.input_value()}, not {value}")
        dash.measure(
            steps[toggled],
            toggle.click,
        )


def relations_steps(dash: Dashboard, repeats: int, steps: dict[str, Step]) -> None:
    """A generated batch of 256 items (every section but the loss terms, which need a run),
    then a run's held-out set at the same slider setting (as many items as the run keeps)."""
    page = dash.page
    dash.measure(Step("go", "setup"), go_to(dash, "Relations"))
    source = page.locator(".st-key-rel_source")
    dash.measure(Step("source", "setup"), source.get_by_text("Generate", exact=True).click)
    set_slider(dash, "rel_gen_batch", 256)
    size = batch_items(dash)
    print(f"  Relations batch: {size} generated items", file=sys.stderr, flush=True)
    if size != 256:
        raise RuntimeError(f"the generated batch has {size} items, not 256")
    seed = page.locator(".st-key-rel_gen_seed input").first
    for i in range(repeats):
        dash.measure(
            steps["Relations: a new 256-item batch (draw seed)"],
            lambda v=str(100 + i): (seed.fill(v), seed.press("Enter")),
        )
    relations_widgets(dash, repeats, steps, "256 items")
    run_source = source.get_by_text("A run's held-out set", exact=True)
    dash.measure(Step("source", "setup"), run_source.click)
    set_slider(dash, "rel_run_batch", 256)
    size = batch_items(dash)
    print(f"  Relations batch: {size} held-out items of a run", file=sys.stderr, flush=True)
    relations_widgets(dash, repeats, steps, f"a run's {size} items, with loss terms")


SPACE_MAP = 'iframe[title="dashboard.components.space_map.space_map"]'
SPACE_SIZES = (1000, 10_000)  # items per run of the synthetic Space runs (3 runs, then 1 run)


def write_space_runs(root: Path) -> dict[int, Path]:
    """Synthetic runs for the Space steps: 3 runs x 1,000 items and 1 run x 10,000, with their
    maps made beforehand into the server's cache folder by a stand-in (the first two coordinates):
    the steps time the page, not UMAP."""
    import numpy as np

    from sdl import projection
    from tests.run_fixtures import write_sample_run

    folders = {}
    real_umap = projection.umap_2d
    projection.umap_2d = lambda x, p=None: np.asarray(x, np.float32)[:, :2]
    try:
        for n in SPACE_SIZES:
            folder = root / f"space-{n}"
            losses = ("sdl", "all", "mulsupcon") if n <= 1000 else ("sdl",)
            for loss in losses:
                run = write_sample_run(folder / loss, loss, n=n, snapshot_items=0)
                projection.cached_projection(run, space="head")
            folders[n] = folder
    finally:
        projection.umap_2d = real_umap
    return folders


def map_point(dash: Dashboard, panel: int, k: int) -> tuple[float, float]:
    """Page coordinates of a map point (the map's frame reports where it drew it)."""
    frame_el = dash.page.locator(SPACE_MAP).first
    frame_el.scroll_into_view_if_needed()
    box = frame_el.bounding_box()
    at = (
        frame_el.element_handle()
        .content_frame()
        .evaluate("([p, k]) => window.spaceMapPoint(p, k)", [panel, k])
    )
    return box["x"] + at["x"], box["y"] + at["y"]


def isolated_points(dash: Dashboard, panel: int, count: int) -> list[int]:
    """Up to ``count`` shown points of a panel, most isolated first: a click picks whichever point
    is nearest the cursor, so in a cloud of 10,000 points a click aimed at a crowded point can land
    on its neighbour, which may be the anchor already."""
    frame = dash.page.locator(SPACE_MAP).first.element_handle().content_frame()
    return frame.evaluate(ISOLATED_JS, [panel, 300, count])


def map_frame(dash: Dashboard, old: str | None = None):
    """The map's frame once it has drawn (a revision other than ``old``, when given)."""
    frame_el = dash.page.locator(SPACE_MAP).first
    frame_el.wait_for(timeout=LIMIT_S * 1000)
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_function(
        "(old) => document.body.dataset.revision && document.body.dataset.revision !== old",
        arg=old,
        timeout=LIMIT_S * 1000,
    )
    return frame


def measure_hover(dash: Dashboard, step: Step, panel: int, k: int) -> None:
    """A hover: time until the hover card shows; the script runs it caused (should be none)."""
    page = dash.page
    frame = map_frame(dash)
    x, y = map_point(dash, panel, k)
    page.mouse.move(x - 40, y - 40)
    page.wait_for_timeout(300)
    frame.evaluate("document.getElementById('tip').style.display = 'none'")
    wall = time.time()
    bytes_start = dash.bytes
    start = page.evaluate("performance.now()")
    page.mouse.move(x, y)
    frame.locator("#tip").wait_for(state="visible", timeout=10_000)
    shown = page.evaluate("performance.now()")
    page.wait_for_timeout(int(QUIET_S * 1000) + 300)  # a rerun, if the hover caused one, shows
    runs = dash.server_runs(wall)
    step.seconds.append((shown - start) / 1000)
    step.server.append(sum(r["seconds"] for r in runs))
    step.runs.append(len(runs))
    step.received.append(dash.bytes - bytes_start)


def space_map_steps(dash: Dashboard, repeats: int, steps: dict[str, Step], size: str) -> None:
    """Hover, click (anchor) and lasso (selection) on the map that is shown, ``repeats`` times."""
    page = dash.page
    anchor = page.locator('input[aria-label="Anchor item"]').first

    def step(what: str) -> Step:
        name = f"Space: {what} ({size})"
        return steps.setdefault(name, Step(name, "widget"))

    for i in range(repeats):
        measure_hover(dash, step("hover a point"), 0, 5 + 7 * i)
    targets = isolated_points(dash, 0, 2 * repeats)
    for _ in range(repeats):
        frame = map_frame(dash)
        before = anchor.input_value()
        rows = {k: frame.evaluate("([p, k]) => window.spaceMapPoint(p, k).row", [0, k])
                for k in targets}  # fmt: skip
        # a point that is not the anchor, and that the hover card confirms under the cursor (an
        # outlying point can sit under the map's toolbar, which takes the click)
        for k in [k for k in targets if str(rows[k]) != before]:
            targets.remove(k)
            x, y = map_point(dash, 0, k)
            page.mouse.move(x - 30, y - 30)
            page.mouse.move(x, y, steps=4)
            page.wait_for_timeout(300)
            if frame.locator("#tip").get_attribute("data-item") == str(rows[k]):
                break
        else:
            raise RuntimeError("no isolated map point showed its hover card")
        drawn = frame.evaluate("document.body.dataset.revision")
        dash.measure(step("click a point: the anchor"), lambda x=x, y=y: page.mouse.click(x, y))
        if anchor.input_value() == before:
            raise RuntimeError("clicking a point did not change the anchor")
        # the map redrawn with the new anchor before the next gesture (at 10,000 points the
        # browser draws for a while after the server is done, and a click meanwhile is lost)
        map_frame(dash, drawn)
    panels = int(map_frame(dash).evaluate("document.body.dataset.panels"))
    for i in range(repeats):
        map_frame(dash)
        cx, cy = map_point(dash, i % panels, 17 + 5 * i)

        def draw(cx=cx, cy=cy, r=50) -> None:
            page.mouse.move(cx + r, cy)
            page.mouse.down()
            for a in range(1, 17):
                angle = a * 2 * 3.14159 / 16
                page.mouse.move(cx + r * math.cos(angle), cy + r * math.sin(angle), steps=2)
            page.mouse.up()

        dash.measure(step("lasso: the selection"), draw)
        page.get_by_text("Selected:").first.wait_for(timeout=30_000)


def space_steps(dash: Dashboard, repeats: int, steps: dict[str, Step]) -> None:
    """The demo's 3 runs (250 items each), then synthetic 3 runs x 1,000 and 1 run x 10,000."""
    page = dash.page
    dash.measure(Step("go", "setup"), go_to(dash, "Space"))
    modes = ("number of labels", "relation to the anchor")
    for i in range(repeats):
        option = page.get_by_text(modes[i % 2], exact=True).first
        dash.measure(steps["Space: change the colour mode (demo, 3 runs x 250)"], option.click)
    space_map_steps(dash, repeats, steps, "demo, 3 runs x 250")
    for n, folder in dash.space_runs.items():
        first = steps.setdefault(
            f"Space: first map of {n:,} items a run",
            Step(f"Space: a new folder's first map drawn ({n:,} items a run)", "first"),
        )
        old = map_frame(dash).evaluate("document.body.dataset.revision")
        start = time.time()
        # focus back on the page from the map's frame (the Data box then opens on one click)
        page.locator("h1").first.click()
        box = page.get_by_label("Runs folder", exact=True).and_(page.locator("input"))
        dash.measure(
            Step("folder", "setup"), lambda b=box, f=folder: (b.fill(str(f)), b.press("Enter"))
        )
        data = page.get_by_label("Data", exact=True).and_(page.locator("input"))
        data.click()
        option = page.locator('[role="option"]').filter(has_text="synthetic").first
        if "synthetic" not in data.input_value():  # the data group may be chosen already
            dash.measure(Step("data", "setup"), option.click)
        else:
            page.keyboard.press("Escape")
        map_frame(dash, old)  # the new runs' map drawn in the browser
        first.seconds.append(time.time() - start)
        first.server.append(sum(r["seconds"] for r in dash.server_runs(start)))
        first.runs.append(len(dash.server_runs(start)))
        first.received.append(0)
        runs = "3 runs" if n <= 1000 else "1 run"
        space_map_steps(dash, repeats, steps, f"{runs} x {n:,}")


def run_benchmark(repeats: int, pages: tuple[str, ...]) -> tuple[dict[str, Step], dict]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed: apt-get install -y chromium")
    steps: dict[str, Step] = {}

    def add(name: str, group: str) -> None:
        steps[name] = Step(name, group)

    for title in pages:
        add(f"first visit: {title}", "first")
        add(f"warm switch: {title}", "switch")
    for name in (
        "Relations: a new 256-item batch (draw seed)",
        "Relations: change the anchor (256 items)",
        "Relations: toggle Symmetric (256 items)",
        "Space: change the colour mode (demo, 3 runs x 250)",
    ):
        add(name, "widget")
    extra: dict = {}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        env = {"PYTHONUNBUFFERED": "1"}
        space_runs: dict[int, Path] = {}
        env["SDL_DASHBOARD_ROOTS"] = tmp  # the server may open folders in it (see below)
        if "Space" in pages:
            # the Space steps' synthetic runs, inside that folder, their maps in the server's
            # cache folder
            env["SDL_CACHE"] = str(Path(tmp) / "cache")
            previous = os.environ.get("SDL_CACHE")
            os.environ["SDL_CACHE"] = env["SDL_CACHE"]
            try:
                space_runs = write_space_runs(Path(tmp) / "space-runs")
            finally:
                os.environ.pop("SDL_CACHE")
                if previous is not None:
                    os.environ["SDL_CACHE"] = previous
        port = int(os.environ.get("SDL_BENCH_PORT") or free_port())  # a fixed port where given
        dash = Dashboard(browser, port, Path(tmp), env)
        dash.space_runs = space_runs
        try:
            extra["healthy_s"] = dash.wait_healthy()
            cold = Step("cold start", "cold")
            dash.page.goto(dash.url)
            settled = dash.wait_settled(0, 0.0)
            # The page's clock starts at navigation; add the time from launch to navigation.
            nav_start = dash.page.evaluate("performance.timeOrigin") / 1000
            cold.seconds.append(nav_start - dash.started + settled / 1000)
            runs = dash.server_runs(0)
            cold.server.append(sum(r["seconds"] for r in runs))
            cold.runs.append(len(runs))
            cold.received.append(dash.bytes)
            steps = {"cold start: first page settled": cold, **steps}
            # The demo alone, as on a fresh clone: the runs this checkout has trained (its runs/
            # folder, the sidebar's default) would add sections to Compare and entries elsewhere.
            empty = Path(tmp) / "no-runs"
            empty.mkdir()
            box = dash.page.get_by_label("Runs folder", exact=True).and_(dash.page.locator("input"))
            dash.measure(
                Step("folder", "setup"), lambda: (box.fill(str(empty)), box.press("Enter"))
            )
            for title in pages[1:] + pages[:1]:
                dash.measure(steps[f"first visit: {title}"], go_to(dash, title))
            for _ in range(repeats):
                for title in pages[1:] + pages[:1]:
                    dash.measure(steps[f"warm switch: {title}"], go_to(dash, title))
            for widgets in (relations_steps, space_steps):
                try:
                    widgets(dash, repeats, steps)
                except Exception as exc:  # keep what was measured; say what was not
                    print(f"  skipped {widgets.__name__}: {exc}"[:400], file=sys.stderr, flush=True)
        finally:
            dash.close()
            browser.close()
    return steps, extra


# --- where the time goes ---------------------------------------------------------------------------

HEAVY = ("torch", "sklearn", "umap", "numba", "scipy", "plotly", "pandas", "pyarrow", "PIL")


def import_profile(target: str) -> dict[str, float]:
    """Seconds spent importing ``target`` in a fresh interpreter, in all and per heavy package."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {target}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    costs: dict[str, float] = {}
    total = 0.0
    for line in out.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        cumulative, depth, name = int(match.group(1)) / 1e6, len(match.group(2)), match.group(3)
        if depth == 1:  # a module imported at the top level of the target's import tree
            total += cumulative
        top = name.split(".")[0]
        if top in HEAVY and name == top:
            costs[top] = costs.get(top, 0.0) + cumulative
    costs["(all)"] = total
    return costs


def element_sizes(page_file: str, top: int = 5) -> list[tuple[str, int]]:
    """The largest elements a page sends, by the size of their protobuf message, headless."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=600).run()
    if page_file != "views/relations.py":
        at.switch_page(page_file).run()
    sizes = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "?")
        if proto is None or kind in ("block", "container"):
            continue
        key = getattr(node, "key", None) or getattr(proto, "id", "")[-24:]
        sizes.append((f"{kind} {key}".strip(), proto.ByteSize()))
    sizes.sort(key=lambda x: -x[1])
    return [("(all elements)", sum(s for _, s in sizes)), *sizes[:top]]


def _walk(node):
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)
    else:
        yield node


# --- printing --------------------------------------------------------------------------------------


def fmt_s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "–"


def table(steps: dict[str, Step]) -> str:
    rows = [
        "| step | n | settled, median s | min–max s | server s (runs) | received KiB | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for step in steps.values():
        if not step.seconds:
            continue
        target = ""
        if step.group == "cold":
            target = f"< {TARGETS['cold']:g} s settled"
            ok = statistics.median(step.seconds) < TARGETS["cold"]
        elif step.group == "switch":
            target = f"< {TARGETS['switch']:g} s settled"
            ok = statistics.median(step.seconds) < TARGETS["switch"]
        elif step.group == "widget":
            target = f"< {TARGETS['widget_server']:g} s server"
            ok = statistics.median(step.server) < TARGETS["widget_server"]
        if target:
            target += " ✓" if ok else " ✗"
        runs = statistics.median(step.runs)
        rows.append(
            f"| {step.name} | {len(step.seconds)} | {fmt_s(step.seconds)} | "
            f"{min(step.seconds):.2f}–{max(step.seconds):.2f} | "
            f"{fmt_s(step.server)} ({runs:g}) | {statistics.median(step.received) / 1024:,.0f} | "
            f"{target} |"
        )
    return "\n".join(rows)


def main() -> None:
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server and browser are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, no profile")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per step (default 5)")
    parser.add_argument("--no-profile", action="store_true", help="skip imports and sizes")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")
    page_files = {p.stem for p in (REPO / "dashboard" / "views").glob("*.py")}
    pages = tuple(p for p in PAGES if p.lower() in page_files)
    steps, extra = run_benchmark(repeats, pages)
    print(
        f"## Dashboard speed ({repeats} repeats, demo runs; server healthy after "
        f"{extra['healthy_s']:.1f} s)\n"
    )
    print(table(steps))
    if args.quick or args.no_profile:
        return
    print("\n## Import cost in a fresh interpreter, seconds (cumulative, `-X importtime`)\n")
    targets = ["dashboard.ui", "dashboard.jobs", "dashboard.analysis", "sdl.projection"]
    profiles = {t: import_profile(t) for t in targets}
    columns = ["(all)", *HEAVY]
    print("| module | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for target, costs in profiles.items():
        cells = [f"{costs[c]:.2f}" if c in costs else "–" for c in columns]
        print(f"| {target} | " + " | ".join(cells) + " |")
    print("\n## Largest elements per page (AppTest, protobuf bytes)\n")
    print("| page | element | KiB |")
    print("|---|---|---:|")
    for title in pages:
        for name, size in element_sizes(f"views/{title.lower()}.py"):
            print(f"| {title} | {name} | {size / 1024:,.1f} |")


if __name__ == "__main__":
    main()
