"""The Space page's map: a custom Streamlit component (plotly.js in its own frame).

Why a component: ``st.plotly_chart`` gives box/lasso/click selections back, but its hover label is
text only and cannot show an item's image. This component draws the map with the plotly.js that the
installed ``plotly`` package ships and shows a hover card with the item's thumbnail (or its text,
for text data) and labels. The thumbnails travel as one small PNG atlas file per panel, which
the browser fetches once, so a hover costs the server nothing. It sends back two gestures, each
meaning one thing: a click on a point (``{"anchor": row, "run": key}``) and a box or lasso
selection (``{"selected": [rows], "run": key}``), each with a fresh ``event`` token.

The frontend (``space_map_frontend/``) is plain HTML and JavaScript with no build step. Streamlit
serves a component's files only from inside its folder (it refuses paths whose real path leaves
it), so the frontend and plotly.min.js are copied together into a folder of the project's cache,
named by plotly's version and the frontend's content.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.components.v1 import declare_component

from sdl.data._files import cache_dir
from sdl.runs import write_bytes_atomic

FRONTEND = Path(__file__).with_name("space_map_frontend")
FRONTEND_FILES = ("index.html", "space_map.js")
TEXT_CHARS = 240  # a hovered item's text is cut to this many characters
GL_ABOVE = 1500  # points per panel above which WebGL draws them (where the browser has it)
ATLAS_DIR = "atlas"  # thumbnail atlases, inside the served folder
MAX_ATLASES = 256


@dataclass(frozen=True)
class Panel:
    """One run's map, as the component draws it.

    Attributes:
        run: the run's key (sent back with every gesture).
        title: the panel's title.
        xy: (n, 2) map coordinates of the shown (hoverable, clickable) items.
        rows: (n,) each shown item's row in the run's arrays.
        ids: (n,) each shown item's id.
        cats: (n,) each shown item's category (an index into the map's categories).
        labels: n label-set texts.
        thumbs: (n, H, W) or (n, H, W, 3) uint8 thumbnails of the shown items, or None.
        texts: n texts (text data), or None.
        faint: (m, 2) coordinates of items drawn faint and not hoverable (filtered out), or None.
        anchor: the anchor's coordinates when it is in this run, else None.
        selected: positions (into the shown items) of the selected ones, or None: no selection.
    """

    run: str
    title: str
    xy: np.ndarray
    rows: np.ndarray
    ids: np.ndarray
    cats: np.ndarray
    labels: list[str]
    thumbs: np.ndarray | None = None
    texts: list[str] | None = None
    faint: np.ndarray | None = None
    anchor: tuple[float, float] | None = None
    selected: np.ndarray | None = None


def thumb_atlas(thumbs: np.ndarray) -> tuple[bytes, dict]:
    """All thumbnails in one PNG grid, at their own size (the browser enlarges them).

    Args:
        thumbs: (n, H, W) or (n, H, W, 3) uint8.

    Returns:
        The PNG's bytes and ``{"cols": cells per row, "w": W, "h": H}``; item k sits in cell
        (k % cols, k // cols).

    Raises:
        ValueError: ``thumbs`` is not a stack of 2-D gray or RGB images.
    """
    thumbs = np.asarray(thumbs)
    if thumbs.ndim not in (3, 4) or (thumbs.ndim == 4 and thumbs.shape[3] != 3):
        raise ValueError(f"thumbs must be (n, H, W) or (n, H, W, 3), got shape {thumbs.shape}")
    n, h, w = thumbs.shape[:3]
    cols = max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / cols)))
    grid = np.zeros((rows * h, cols * w, *thumbs.shape[3:]), dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = thumbs[k]
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")  # optimize=True: 3% smaller, 10x slower
    return buffer.getvalue(), {"cols": cols, "w": int(w), "h": int(h)}


@st.cache_data(show_spinner=False, max_entries=64)
def atlas_file(thumbs: np.ndarray, folder: str) -> dict:
    """The thumbnails' atlas as a file in the served folder, named by its content.

    A file, not a data URI in the arguments: Streamlit sends a component's arguments again on
    every rerun, while the browser fetches a file once (3 runs x 1,000 MNIST-size thumbnails are
    about 650 KiB as data URIs).

    Returns:
        ``{"src": path relative to the component's index.html, "cols", "w", "h"}``.
    """
    data, shape = thumb_atlas(thumbs)
    name = f"{ATLAS_DIR}/{hashlib.sha256(data).hexdigest()[:24]}.png"
    path = Path(folder) / name
    if not path.is_file():
        write_bytes_atomic(path, data)
        prune_atlases(path.parent)
    return {"src": name, **shape}


def prune_atlases(folder: Path, keep: int = MAX_ATLASES) -> None:
    """Remove the oldest atlas files beyond ``keep`` (each filter or run set makes new ones)."""
    files = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def panel_args(panel: Panel, folder: Path) -> dict:
    """A panel as the JSON the frontend reads (coordinates rounded: sub-pixel digits cost bytes);
    its thumbnails go to an atlas file in ``folder``, the served folder."""
    xy = np.round(np.asarray(panel.xy, dtype=float), 4)
    out = {
        "run": panel.run,
        "title": panel.title,
        "x": xy[:, 0].tolist(),
        "y": xy[:, 1].tolist(),
        "rows": np.asarray(panel.rows).astype(int).tolist(),
        "ids": [str(i) for i in panel.ids],
        "cat": np.asarray(panel.cats).astype(int).tolist(),
        "labels": list(panel.labels),
        "atlas": None,
        "texts": [t[:TEXT_CHARS] for t in panel.texts] if panel.texts is not None else None,
        "faint": None,
        "anchor": [float(v) for v in panel.anchor] if panel.anchor is not None else None,
        "selected": None if panel.selected is None else np.asarray(panel.selected).tolist(),
    }
    if panel.thumbs is not None:
        out["atlas"] = atlas_file(np.asarray(panel.thumbs), str(folder))
    if panel.faint is not None and len(panel.faint):
        faint = np.round(np.asarray(panel.faint, dtype=float), 4)
        out["faint"] = {"x": faint[:, 0].tolist(), "y": faint[:, 1].tolist()}
    return out


def served_folder(root: Path | None = None) -> Path:
    """The folder Streamlit serves the component from: the frontend and plotly.min.js together.

    Made once per plotly version and frontend content under ``<cache>/components/``, built in a
    temporary folder and renamed into place, so a reader never sees half a folder.

    Args:
        root: the cache folder (default: the project's, ``sdl.data._files.cache_dir()``).

    Returns:
        The folder's path.
    """
    import plotly

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    digest = hashlib.sha256()
    for name in FRONTEND_FILES:
        digest.update((FRONTEND / name).read_bytes())
    parent = (root or cache_dir()) / "components"
    target = parent / f"space_map-plotly{plotly.__version__}-{digest.hexdigest()[:12]}"
    if (target / "index.html").is_file():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".space_map-"))
    try:
        for name in FRONTEND_FILES:
            shutil.copyfile(FRONTEND / name, tmp / name)
        shutil.copyfile(plotly_js, tmp / "plotly.min.js")
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
    except OSError:
        if not (target / "index.html").is_file():  # not another process's folder: a real failure
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def space_map(
    panels: list[Panel],
    categories: list[tuple[str, str]],
    view: str,
    key: str,
    height: int = 440,
) -> dict | None:
    """Draw the map; return its last gesture (or None before the first).

    Args:
        panels: one per run, in drawing order (three per row).
        categories: (legend name, colour) per category, in legend order.
        view: what the map shows (runs and space): zoom and tool are kept while it stays the same.
        key: the component's key; its value also sits in ``st.session_state[key]``.
        height: pixels per row of panels.

    Returns:
        The last gesture's value (see the module's docstring), or None.
    """
    folder = served_folder()
    args = {
        "panels": [panel_args(p, folder) for p in panels],
        "categories": [{"name": name, "colour": colour} for name, colour in categories],
        "height": int(height),
        "gl_above": GL_ABOVE,
        "view": view,
    }
    # The frontend redraws only when this changes: an unrelated rerun leaves zoom and hover alone.
    args["revision"] = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    component = declare_component("space_map", path=str(folder))
    return component(**args, key=key, default=None)


def new_gesture(key: str) -> dict | None:
    """The component's value if it is a gesture not handled yet, else None.

    Streamlit hands a component's last value back on every rerun; each gesture carries a fresh
    ``event`` token, so it is acted on once and later reruns leave the page's state alone.
    """
    value = st.session_state.get(key)
    if not isinstance(value, dict) or "event" not in value:
        return None
    seen = f"{key}_handled"
    if st.session_state.get(seen) == value["event"]:
        return None
    st.session_state[seen] = value["event"]
    return value
