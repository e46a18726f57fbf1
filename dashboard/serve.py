"""The dashboard as served: ``streamlit run dashboard/serve.py`` (what ``make dashboard`` runs).

Streamlit finds the ``App`` below and serves the pages of ``app.py`` through it, with
:class:`dashboard.frame_guard.FrameGuard` adding anti-framing headers to every response. The other
safety settings (loopback bind, no usage statistics) come from ``.streamlit/config.toml`` beside
this file, which Streamlit reads whatever the working folder. While the server starts, a thread
imports what the first page needs (torch above all, seconds on a small CPU), so a user who opens
the page a moment after the URL appears does not wait for the imports. Torch then gets one
thread in this process (see ``SERVER_TORCH_THREADS``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

# Streamlit puts this file's folder on sys.path; the guard is imported from the project root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from starlette.middleware import Middleware  # noqa: E402
from streamlit.starlette import App  # noqa: E402

from dashboard.frame_guard import FrameGuard  # noqa: E402

#: What the first page (Relations) imports, slowest first.
WARM_IMPORTS = ("torch", "sdl.explain", "pandas", "plotly.graph_objects", "dashboard.ui")

#: Torch's intra-op threads in the server. What the pages compute in-process is small (a batch of
#: at most 512 items, a map's neighbours, the playground's toy sets), and the browser drawing the
#: page shares the cores: with two OpenMP threads waiting on each other against it, the comparable
#: weights of a 256-item batch took 0.37 s of a rerun instead of 0.015 s on 2 cores. Training
#: jobs are processes of their own and keep torch's default.
SERVER_TORCH_THREADS = 1


def import_warm() -> None:
    for name in WARM_IMPORTS:
        module = importlib.import_module(name)
        if name == "torch":
            module.set_num_threads(SERVER_TORCH_THREADS)


@asynccontextmanager
async def warm_imports(_app: App) -> AsyncIterator[None]:
    """Start the imports beside the server; a page that needs a module still being imported
    waits on Python's import lock for it, so nothing runs half-imported."""
    threading.Thread(target=import_warm, name="sdl-warm-imports", daemon=True).start()
    yield


app = App("app.py", middleware=[Middleware(FrameGuard)], lifespan=warm_imports)
