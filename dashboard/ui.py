"""Streamlit pieces every page uses: the runs folder, loading runs (cached), run cards, downloads."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from dashboard import analysis, sources
from dashboard.sources import RunRef
from sdl.options import Option
from sdl.runs import (
    EMBEDDINGS,
    METRICS,
    Run,
    RunError,
    folder_signature,
    read_embeddings,
    read_json,
)

RUNS_DIR_KEY = "runs_dir"
STATE_ICONS = {
    "done": ":green[:material/check_circle:]",
    "running": ":blue[:material/progress_activity:]",
    "failed": ":red[:material/error:]",
    "stopped": ":orange[:material/stop_circle:]",
    "unknown": ":gray[:material/help:]",
}


# --- shareable state: a page's main choices in the URL ---------------------------------------------


def url_state(
    key: str,
    param: str,
    options: Sequence[object] | Callable[[str], object],
    multi: bool = False,
) -> None:
    """Keep widget ``key``'s value in the URL as ``?param=...``, so a link reopens the same view.

    Call it just before the widget. On a session's first sight of ``key`` a valid value in the URL
    becomes the widget's value; an invalid one is ignored with a note. Afterwards the widget's value
    is written to the URL on each run. Values are matched as text against ``options``.

    Args:
        key: the widget's session-state key.
        param: the query parameter's name.
        options: the values the widget accepts, or a function that parses the URL's text into
            one (raising ValueError for a bad one), for a number.
        multi: the widget holds a list (a multiselect); the URL repeats the parameter.
    """
    seeded = f"_url_seeded_{key}"
    if key not in st.session_state and not st.session_state.get(seeded):
        st.session_state[seeded] = True
        texts = st.query_params.get_all(param)
        if texts:
            good, bad, why = [], [], ""
            for text in texts:
                if callable(options):
                    try:
                        good.append(options(text))
                    except ValueError as exc:
                        bad.append(text)
                        why = str(exc)
                    continue
                by_text = {str(option): option for option in options}
                if text in by_text:
                    good.append(by_text[text])
                else:
                    bad.append(text)
                    why = "not one of " + ", ".join(list(by_text)[:8])
                    why += " …" if len(by_text) > 8 else ""
            if bad:  # in the sidebar: the widget may sit in a closed expander
                st.sidebar.caption(
                    f":material/link_off: The link's {md_text(param)}="
                    f"{md_text(', '.join(bad))} is ignored ({md_text(why)})."
                )
            if good:
                st.session_state[key] = good if multi else good[0]
        return
    if key in st.session_state:
        value = st.session_state[key]
        st.query_params[param] = [str(v) for v in value] if multi else str(value)


# --- options: one widget per declared option ------------------------------------------------------


def option_input(
    option: Option,
    key: str,
    container=st,
    url_param: str | None = None,
    choice_widget: str = "selectbox",
) -> object:
    """A widget for one :class:`sdl.options.Option`, drawn from its type, choices and bounds.

    Choices give a selectbox (or a radio), a flag a toggle, a number a number input within the
    option's bounds (an open upper bound stops just below it), a nullable number whose default is
    None a text box holding "none", anything else a text box. The widget starts at the option's
    default unless session state (a URL value, an earlier choice) already holds one.

    Args:
        option: the option to draw.
        key: the widget's session-state key.
        container: where to draw it (``st``, a column, the sidebar).
        url_param: keep the value in the URL as ``?url_param=...`` (see :func:`url_state`).
        choice_widget: "selectbox" or "radio", for an option with choices.

    Returns:
        The widget's value, as the widget gives it: callers parse it with ``option.parse`` (a
        nullable number arrives as text).

    Raises:
        ValueError: for a ``choice_widget`` other than "selectbox" and "radio".
    """
    if choice_widget not in ("selectbox", "radio"):
        raise ValueError(f"choice_widget must be 'selectbox' or 'radio', got {choice_widget!r}")
    label = option.name.replace("_", " ")
    as_text = option.kind in (int, float) and option.nullable and option.default is None
    if url_param is not None:
        if option.choices is not None:
            url_state(key, url_param, option.choices)
        elif option.kind is bool:
            url_state(key, url_param, (True, False))
        elif as_text:
            url_state(key, url_param, lambda text: str(option.parse(text)).lower())
        else:
            url_state(key, url_param, option.parse)
    # A value already in session state (from the URL) must not meet a default as well.
    fresh = key not in st.session_state
    if option.choices is not None:
        start = {"index": option.choices.index(option.default)} if fresh else {}
        draw = container.radio if choice_widget == "radio" else container.selectbox
        return draw(label, option.choices, key=key, help=option.help, **start)
    if option.kind is bool:
        start = {"value": bool(option.default)} if fresh else {}
        return container.toggle(label, key=key, help=option.help, **start)
    if as_text:
        start = {"value": "none"} if fresh else {}
        return container.text_input(label, key=key, help=option.help, **start)
    if option.kind in (int, float):
        cast = option.kind
        low = None if option.low is None else cast(option.low)
        high = None if option.high is None else cast(option.high)
        if option.high_open and high is not None:
            high = high - 1 if cast is int else float(high) - 1e-9
        if option.low_open and low is not None:
            low = low + 1 if cast is int else float(low) + 1e-9
        start = {"value": cast(option.default)} if fresh else {}
        return container.number_input(
            label, min_value=low, max_value=high, step=1 if cast is int else None,
            format="%d" if cast is int else "%g", key=key, help=option.help, **start,
        )  # fmt: skip
    start = {"value": str(option.default)} if fresh else {}
    return container.text_input(label, key=key, help=option.help, **start)


# --- where runs come from -------------------------------------------------------------------------


def _runs_folder_choice() -> tuple[Path | None, str | None]:
    """The runs folder the sidebar names, resolved, or None and why it is refused."""
    return sources.resolve_runs_dir(st.session_state.get(RUNS_DIR_KEY, sources.DEFAULT_RUNS))


def sidebar_runs_folder() -> Path | None:
    """The sidebar's runs-folder box; returns the folder, or None (with the reason shown) if refused."""
    with st.sidebar:
        st.text_input(
            "Runs folder",
            value=sources.DEFAULT_RUNS,
            key=RUNS_DIR_KEY,
            help="Runs in this folder appear beside the demo. Relative to the project folder.",
        )
        path, problem = _runs_folder_choice()
        if problem:
            st.error(problem)
        elif not path.is_dir():
            st.caption(f"`{path.name}/` does not exist yet; runs you start will be written there.")
    return path


def runs_folder() -> Path | None:
    """The runs folder the pages read and write (None while the sidebar's choice is refused)."""
    return _runs_folder_choice()[0]


@st.cache_resource(show_spinner=False, max_entries=16)
def _load_folder(root: str, source: str, signature: tuple) -> tuple[list, list[str]]:
    del signature  # only part of the cache key: a changed run file reloads the folder
    return sources.load_folder(Path(root), source)


def folder_runs(root: Path, source: str) -> tuple[list[tuple[RunRef, Run]], list[str]]:
    """The runs of one folder (cached until a run file changes), and messages for non-runs."""
    if not root.is_dir():
        return [], []
    refs, problems = _load_folder(str(root), source, folder_signature(root))
    return list(refs), list(problems)


def all_runs() -> tuple[list[tuple[RunRef, Run]], list[str]]:
    """The demo runs, then the runs folder's runs; and messages for folders that are not runs."""
    found: list[tuple[RunRef, Run]] = []
    errors: list[str] = []
    folders = [(sources.demo_dir(), "demo")]
    user = runs_folder()
    if user is not None and user != sources.demo_dir():
        folders.append((user, "runs"))
    for root, source in folders:
        refs, problems = _load_folder(str(root), source, folder_signature(root))
        found.extend(refs)
        errors.extend(problems)
    return found, errors


@st.cache_resource(show_spinner=False, max_entries=64)
def _embeddings(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    del mtime_ns
    return read_embeddings(path)


def run_arrays(ref: RunRef) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The run's held-out arrays (cached), or None and what is wrong with them."""
    file = ref.path / EMBEDDINGS
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        return None, f"{ref.key}: no {EMBEDDINGS} (the run has not finished evaluating)"
    try:
        return _embeddings(str(ref.path), mtime), None
    except RunError as exc:
        return None, f"{ref.key}: {exc}"


def label_names(run: Run, arrays: dict[str, np.ndarray]) -> list[str]:
    """The names of the run's labels: from its arrays, else its config, else their numbers."""
    count = arrays["labels"].shape[1]
    names = arrays.get("label_names")
    if names is None:
        names = run.config.get("label_names")
    if not isinstance(names, list | np.ndarray) or np.ndim(names) != 1 or len(names) != count:
        return [str(i) for i in range(count)]
    return [str(n) for n in names]


def with_embeddings(runs: list[tuple[RunRef, Run]]) -> list[tuple[RunRef, Run]]:
    return [(ref, run) for ref, run in runs if run.has_embeddings]


def default_keys(
    runs: list[tuple[RunRef, Run]], preferred: tuple[str, ...], limit: int
) -> list[str]:
    """Up to ``limit`` run keys: the first run of each preferred loss, in that order, then the rest."""
    keys: list[str] = []
    for loss in preferred:
        match = next(
            (ref.key for ref, run in runs if run.loss == loss and ref.key not in keys), None
        )
        if match:
            keys.append(match)
    keys += [ref.key for ref, _ in runs if ref.key not in keys]
    return keys[:limit]


# --- showing runs -----------------------------------------------------------------------------------

# Markdown's inline markup, and ':' (Streamlit's :icon: and :color[...] codes), '$' (LaTeX).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#<>:$|~])")
# What starts a block only at the beginning of a line: a list item or a quote.
_BLOCK_START = re.compile(r"^(\d+(?=[.)])|[-+>=])")


def md_text(value: object) -> str:
    """``value`` as literal text inside st.markdown: every markup character escaped.

    Run files are the user's (or anyone's) files: a loss name like ``**x** :red[y] <img>`` must
    show as those characters, never as formatting, a link or HTML.
    """
    text = " ".join(str(value).split())  # one line: a newline would start a new block
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    match = _BLOCK_START.match(text)
    if match:
        end = match.end()
        text = text[:end] + "\\" + text[end:] if match.group(1)[0].isdigit() else "\\" + text
    return text


def run_title(ref: RunRef, run: Run) -> str:
    """A run's one-line title in markdown: state icon, name, loss, dataset, seed (all escaped)."""
    icon = STATE_ICONS.get(run.state, STATE_ICONS["unknown"])
    parts = (ref.key, run.loss, run.dataset, f"seed {run.seed}")
    name, *rest = (md_text(p) for p in parts)
    return f"{icon} **{name}** · " + " · ".join(rest)


def run_error(message: str) -> None:
    """One run that cannot be shown: one error card (the page goes on with the other runs)."""
    st.error(md_text(message), icon=":material/error:")


def show_problems(run_errors: list[str], runs: list[tuple[RunRef, Run]]) -> None:
    """A warning for every unreadable folder and every run with problems; nothing else stops."""
    for message in run_errors:
        st.warning(f"Not a readable run: {md_text(message)}", icon=":material/warning:")
    for ref, run in runs:
        if run.problems:
            text = md_text("; ".join(run.problems))
            st.warning(f"**{md_text(ref.key)}**: {text}", icon=":material/warning:")


@st.cache_data(show_spinner=False, max_entries=256)
def _metrics_line(path: str, mtime_ns: int) -> str:
    del mtime_ns  # part of the key: a rewritten metrics.json is read again
    try:
        metrics = read_json(Path(path) / METRICS)
    except (OSError, ValueError):
        return ""
    return analysis.card_metrics(metrics) if isinstance(metrics, dict) else ""


def run_metrics_line(run_dir: Path) -> str:
    """A finished run's card numbers (:func:`dashboard.analysis.card_metrics`), or "" without a
    readable metrics.json."""
    try:
        mtime = (run_dir / METRICS).stat().st_mtime_ns
    except OSError:
        return ""
    return _metrics_line(str(run_dir), mtime)


def run_card(ref: RunRef, run: Run) -> None:
    """A run's name, loss, dataset, seed and state; its problems, if any, in the card."""
    with st.container(border=True):
        st.markdown(run_title(ref, run))
        if run.problems:
            st.caption(":material/warning: " + md_text("; ".join(run.problems)))
        elif run.metrics:
            st.caption(analysis.card_metrics(run.metrics))


# --- images -----------------------------------------------------------------------------------------


def thumb_image(thumb: np.ndarray, size: int = 64) -> Image.Image:
    """A PIL image of a (H, W) or (H, W, 3) uint8 thumbnail, enlarged without blurring."""
    image = Image.fromarray(np.asarray(thumb, dtype=np.uint8))
    scale = max(1, size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def thumb_data_uri(thumb: np.ndarray, size: int = 48) -> str:
    buffer = io.BytesIO()
    thumb_image(thumb, size).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- downloads ----------------------------------------------------------------------------------------


def download_figure(fig: go.Figure, name: str, key: str) -> None:
    st.download_button(
        "Download figure (HTML)",
        # Made only when clicked; plotly.js is inlined so the file works offline.
        lambda: fig.to_html(include_plotlyjs=True, full_html=True).encode(),
        file_name=f"{name}.html",
        mime="text/html",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )


def download_table(frame, name: str, key: str) -> None:
    st.download_button(
        "Download table (CSV)",
        frame.to_csv().encode(),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )


def relation_legend() -> None:
    from dashboard.style import RELATION_COLORS, RELATION_HELP

    chips = " ".join(
        f'<span style="background:{color};color:{"#222" if key in ("R1", "R3") else "white"};'
        f'padding:2px 8px;border-radius:10px;margin-right:6px;font-size:0.85rem" '
        f'title="{html.escape(RELATION_HELP[key])}">{key} {RELATION_HELP[key].split(":")[0]}</span>'
        for key, color in RELATION_COLORS.items()
    )
    st.markdown(chips, unsafe_allow_html=True)


#: A file path here makes the app append one JSON line per script run (for the dashboard benchmark).
TIMING_ENV = "SDL_DASHBOARD_TIMING"


def log_timing(page: str, started: float, outcome: str) -> None:
    """One JSON line (page, seconds since ``started``, outcome) when SDL_DASHBOARD_TIMING names a
    file: app.py logs each script run, a fragment its own reruns (they skip app.py)."""
    target = os.environ.get(TIMING_ENV)
    if not target:
        return
    line = {
        "page": page,
        "seconds": round(time.perf_counter() - started, 6),
        "outcome": outcome,
        "end": time.time(),
    }
    # A log, not a run file: one short append per run, which O_APPEND keeps whole.
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
