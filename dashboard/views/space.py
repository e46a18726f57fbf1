"""Space: UMAP maps of several runs' held-out embeddings, aligned, with neighbours of a chosen item."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import analysis, ui
from dashboard.sources import RunRef
from dashboard.style import RELATION_COLORS, RELATION_LABELS, RELATIONS_CAPTION, count_colors
from sdl import projection
from sdl.explain import relations_to_anchor
from sdl.losses import compared_losses
from sdl.relations import Relation
from sdl.runs import EMBEDDINGS, Run

COLOR_MODES = ("relation to the anchor", "a label", "number of labels")
MAX_RUNS = 6
FIG_KEY = "space_fig"


@dataclass
class Space:
    """One run's held-out set, ready to draw."""

    ref: RunRef
    run: Run
    arrays: dict[str, np.ndarray]
    names: list[str]
    coords: np.ndarray  # (N, 2) aligned
    keys: np.ndarray  # (N,) id + label set: the same item in two runs has the same key

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["labels"]

    def find(self, key: str) -> int | None:
        hits = np.flatnonzero(self.keys == key)
        return int(hits[0]) if len(hits) else None


def item_keys(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Ids alone can repeat across dataset seeds with different content; add the label set."""
    bits = np.packbits(arrays["labels"].astype(bool), axis=1)
    return np.array([f"{i}:{b.tobytes().hex()}" for i, b in zip(arrays["ids"], bits, strict=True)])


@st.cache_data(show_spinner=False, max_entries=64)
def _projection(path: str, mtime_ns: int, params: projection.UmapParams) -> np.ndarray:
    del mtime_ns
    coords, _ = projection.cached_projection(path, params)
    return coords


@st.cache_data(show_spinner=False, max_entries=16)
def _aligned(coords: tuple[np.ndarray, ...], keys: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    return projection.align_projections(list(coords), list(keys))


@st.cache_data(show_spinner=False, max_entries=32)
def _shares(path: str, mtime_ns: int, _embeddings: np.ndarray, _labels: np.ndarray, k: int) -> dict:
    del path, mtime_ns  # the cache key; the arrays are not hashed
    shares = projection.neighbour_relation_shares(_embeddings, _labels, k, max_items=1000)
    return {r.short: v for r, v in shares.items()}


# --- choices ------------------------------------------------------------------------------------


def choose_runs(runs: list[tuple[RunRef, Run]]) -> list[tuple[RunRef, Run]]:
    by_key = {ref.key: (ref, run) for ref, run in runs}
    default = ui.default_keys(runs, tuple(compared_losses()), 3)
    chosen = st.multiselect(
        "Runs to compare (the first is the reference the others are aligned to)",
        list(by_key),
        default=default,
        max_selections=MAX_RUNS,
        key="space_runs",
    )
    return [by_key[k] for k in chosen]


def choose_umap() -> projection.UmapParams:
    with st.expander("UMAP settings"):
        cols = st.columns(2)
        neighbours = cols[0].slider("Neighbours", 5, 50, 15, key="space_nn")
        min_dist = cols[1].slider("Minimum distance", 0.0, 0.99, 0.1, 0.05, key="space_md")
    return projection.UmapParams(n_neighbors=int(neighbours), min_dist=float(min_dist))


def choose_colour(names: list[str]) -> tuple[str, int, int]:
    cols = st.columns([3, 2, 2])
    mode = cols[0].radio("Colour by", COLOR_MODES, horizontal=True, key="space_colour")
    label = 0
    if mode == "a label":
        label = names.index(cols[1].selectbox("Label", names, key="space_label"))
    k = cols[2].slider("Neighbours to show", 3, 12, 8, key="space_k")
    return mode, label, int(k)


# --- loading ---------------------------------------------------------------------------------------


def load_spaces(chosen: list[tuple[RunRef, Run]], params: projection.UmapParams) -> list[Space]:
    loaded = []
    for ref, run in chosen:
        arrays, problem = ui.run_arrays(ref)
        if problem:
            ui.run_error(problem)
            continue
        loaded.append((ref, run, arrays))
    if not loaded:
        return []
    coords = []
    todo = [
        (ref, arrays)
        for ref, _, arrays in loaded
        if projection.read_cached_projection(ref.path, params) is None
    ]
    bar = st.progress(0.0, text="Projecting…") if todo else None
    for number, (ref, _, arrays) in enumerate(loaded):
        if bar is not None:
            bar.progress(
                number / len(loaded),
                text=f"UMAP of {ref.key} ({len(arrays['embeddings'])} items; the first map "
                "in a session also compiles UMAP, ~20 s)…",
            )
        mtime = (ref.path / EMBEDDINGS).stat().st_mtime_ns
        try:
            coords.append(_projection(str(ref.path), mtime, params))
        except Exception as exc:  # a broken file or an impossible map: say so, keep the others
            ui.run_error(f"{ref.key}: cannot project ({exc})")
            coords.append(None)
    if bar is not None:
        bar.empty()
    kept = [(item, c) for item, c in zip(loaded, coords, strict=True) if c is not None]
    if not kept:
        return []
    keys = [item_keys(arrays) for (_, _, arrays), _ in kept]
    aligned = _aligned(tuple(c for _, c in kept), tuple(keys))
    return [
        Space(ref, run, arrays, ui.label_names(run, arrays), xy, k)
        for ((ref, run, arrays), _), xy, k in zip(kept, aligned, keys, strict=True)
    ]


# --- the anchor --------------------------------------------------------------------------------------


def take_selection(spaces: list[Space], traces: list) -> None:
    """Turn a click (or box) on the map into the anchor, before the anchor widgets are drawn."""
    event = st.session_state.get(FIG_KEY)
    points = []
    try:
        points = list(event["selection"]["points"]) if event else []
    except (KeyError, TypeError):
        points = []
    if not points:
        return
    point = points[0]
    curve = point.get("curve_number")
    index = point.get("point_index", point.get("point_number"))
    token = (curve, index, len(points))
    if token == st.session_state.get("space_last_pick") or curve is None or index is None:
        return
    st.session_state["space_last_pick"] = token
    if not 0 <= curve < len(traces) or traces[curve] is None:
        return
    space_pos, rows = traces[curve]
    if not 0 <= index < len(rows):
        return
    st.session_state["space_anchor_run"] = spaces[space_pos].ref.key
    st.session_state["space_anchor_item"] = int(rows[index])


def choose_anchor(spaces: list[Space]) -> tuple[Space, int]:
    keys = [s.ref.key for s in spaces]
    if st.session_state.get("space_anchor_run") not in keys:
        st.session_state["space_anchor_run"] = keys[0]
    cols = st.columns([3, 2, 5])
    run_key = cols[0].selectbox("Anchor from run", keys, key="space_anchor_run")
    space = spaces[keys.index(run_key)]
    n = len(space.labels)
    if st.session_state.get("space_anchor_item", 0) >= n:
        st.session_state["space_anchor_item"] = 0
    item = int(cols[1].number_input("Anchor item", 0, n - 1, key="space_anchor_item"))
    cols[2].caption("Click a point on a map to make it the anchor.")
    return space, item


# --- drawing -------------------------------------------------------------------------------------------


def categories(
    space: Space, mode: str, label: int, anchor_labels: np.ndarray
) -> tuple[np.ndarray, dict[str, str], dict[str, str]]:
    """Per item a category; the colour and legend name of each category, in drawing order."""
    y = space.labels
    if mode == "relation to the anchor":
        rel = relations_to_anchor(anchor_labels, y)
        cats = np.array([f"R{v}" for v in rel])
        return cats, RELATION_COLORS, RELATION_LABELS
    if mode == "a label":
        name = space.names[label] if label < len(space.names) else str(label)
        cats = np.where(y[:, label] > 0, "yes", "no")
        return cats, {"no": "#d0d0d0", "yes": "#e4572e"}, {"yes": f"has {name}", "no": f"no {name}"}
    counts = y.sum(1).astype(int)
    values = sorted(set(counts.tolist()))
    colours = count_colors(values)
    cats = np.array([str(c) for c in counts])
    return (
        cats,
        {str(v): colours[v] for v in values},
        {str(v): f"{v} label{'s' if v != 1 else ''}" for v in values},
    )


def map_figure(
    spaces: list[Space], mode: str, label: int, anchor: tuple[Space, int]
) -> tuple[go.Figure, list]:
    """Side-by-side maps on shared axes; also which trace shows which items (None: not items)."""
    anchor_space, anchor_item = anchor
    anchor_labels = anchor_space.labels[anchor_item]
    anchor_key = anchor_space.keys[anchor_item]
    cols = min(3, len(spaces))
    rows = math.ceil(len(spaces) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        shared_xaxes="all",
        shared_yaxes="all",
        subplot_titles=[f"{s.ref.key} · {s.run.loss}" for s in spaces],
        horizontal_spacing=0.02,
        vertical_spacing=0.08,
    )
    traces: list = []
    seen: set[str] = set()
    for pos, space in enumerate(spaces):
        row, col = pos // cols + 1, pos % cols + 1
        cats, colours, names = categories(space, mode, label, anchor_labels)
        hover = np.array(
            [
                f"item {i} (id {space.arrays['ids'][i]})<br>{{{analysis.format_label_set(y, space.names)}}}"
                for i, y in enumerate(space.labels)
            ]
        )
        for cat, colour in colours.items():
            rows_in = np.flatnonzero(cats == cat)
            if len(rows_in) == 0:
                continue
            fig.add_trace(
                go.Scatter(
                    x=space.coords[rows_in, 0],
                    y=space.coords[rows_in, 1],
                    mode="markers",
                    # 8 px: big enough to click (a click on a point makes it the anchor)
                    marker={"color": colour, "size": 8, "opacity": 0.85, "line": {"width": 0}},
                    name=names[cat],
                    legendgroup=cat,
                    showlegend=cat not in seen,
                    text=hover[rows_in],
                    hovertemplate="%{text}<extra>" + names[cat] + "</extra>",
                ),
                row=row,
                col=col,
            )
            seen.add(cat)
            traces.append((pos, rows_in))
        here = space.find(anchor_key)
        if here is not None:
            fig.add_trace(
                go.Scatter(
                    x=[space.coords[here, 0]],
                    y=[space.coords[here, 1]],
                    mode="markers",
                    marker={
                        "symbol": "star",
                        "size": 18,
                        "color": "black",
                        "line": {"color": "white", "width": 1.5},
                    },
                    name="anchor",
                    legendgroup="anchor",
                    showlegend=pos == 0,
                    hovertemplate="anchor<extra></extra>",
                ),
                row=row,
                col=col,
            )
            traces.append(None)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(
        height=440 * rows,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top", "x": 0, "title": None},
        plot_bgcolor="#fafafa",
    )
    return fig, traces


def neighbours_panel(spaces: list[Space], anchor: tuple[Space, int], k: int) -> None:
    anchor_space, anchor_item = anchor
    anchor_labels = anchor_space.labels[anchor_item]
    key = anchor_space.keys[anchor_item]
    st.subheader("The anchor and its nearest neighbours in every space")
    left, right = st.columns([1, 6])
    with left:
        text = analysis.format_label_set(anchor_labels, anchor_space.names)
        if "thumbs" in anchor_space.arrays:
            st.image(
                ui.thumb_image(anchor_space.arrays["thumbs"][anchor_item], 112),
                caption=f"anchor {{{text}}}",
            )
        else:
            st.markdown(f"**anchor** {{{ui.md_text(text)}}}")
            if "texts" in anchor_space.arrays:
                st.caption(str(anchor_space.arrays["texts"][anchor_item])[:300])
    with right:
        for space in spaces:
            here = space.find(key)
            st.markdown(f"**{ui.md_text(space.ref.key)}** · {ui.md_text(space.run.loss)}")
            if here is None:
                st.caption("This item is not in this run's held-out set.")
                continue
            idx, sims = projection.nearest_neighbours(space.arrays["embeddings"], here, k)
            rel = relations_to_anchor(anchor_labels, space.labels[idx])
            shorts = [Relation(int(v)).short for v in rel]
            captions = [
                f"{r} · {analysis.format_label_set(space.labels[j], space.names)} · {s:.2f}"
                for r, j, s in zip(shorts, idx, sims, strict=True)
            ]
            if "thumbs" in space.arrays:
                st.image(
                    [ui.thumb_image(space.arrays["thumbs"][j], 72) for j in idx],
                    caption=captions,
                    width=96,
                )
            else:
                frame = pd.DataFrame(
                    {
                        "relation": shorts,
                        "labels": [
                            analysis.format_label_set(space.labels[j], space.names) for j in idx
                        ],
                        "cosine": sims,
                        "text": [
                            str(space.arrays.get("texts", [""] * len(space.labels))[j])[:120]
                            for j in idx
                        ],
                    }
                )
                st.dataframe(frame, hide_index=True)
    st.caption(
        "Caption: relation to the anchor · labels · cosine similarity in the run's embedding space "
        "(the full space, not the 2-D map). A good space puts R2 first, then R4/R5, and no R1."
    )


def shares_figure(spaces: list[Space], k: int) -> go.Figure:
    fig = go.Figure()
    names = [s.ref.key for s in spaces]
    shares = [
        _shares(
            str(s.ref.path),
            (s.ref.path / EMBEDDINGS).stat().st_mtime_ns,
            s.arrays["embeddings"],
            s.labels,
            k,
        )
        for s in spaces
    ]
    for r in RELATION_COLORS:
        fig.add_trace(
            go.Bar(
                y=names,
                x=[100 * sh[r] for sh in shares],
                name=RELATION_LABELS[r],
                orientation="h",
                marker_color=RELATION_COLORS[r],
                texttemplate="%{x:.0f}%",
                textposition="inside",
                hovertemplate="%{y}: %{x:.1f}% " + r + "<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        height=120 + 40 * len(spaces),
        title=f"Who are an item's {k} nearest neighbours? (share per relation, over up to 1000 items)",
        xaxis={"title": "% of neighbours", "range": [0, 100]},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.35, "title": None, "traceorder": "normal"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def render() -> None:
    st.title("Space")
    st.caption(
        "Each run's held-out embeddings mapped to 2-D with UMAP, aligned to the first run "
        "(rotation, reflection and scale only), so the same item sits in comparable places. "
        + RELATIONS_CAPTION
    )
    runs, errors = ui.all_runs()
    for message in errors:
        st.warning(f"Not a readable run: {ui.md_text(message)}", icon=":material/warning:")
    runs = ui.with_embeddings(runs)
    if not runs:
        st.info(
            "No run with held-out embeddings yet: train one on the Training page, or build the demo "
            "with `make demo`."
        )
        return
    chosen = choose_runs(runs)
    if not chosen:
        st.info("Choose at least one run.")
        return
    params = choose_umap()
    spaces = load_spaces(chosen, params)
    if not spaces:
        return
    # The map's click from the previous run becomes the anchor before the anchor widgets are drawn.
    previous = st.session_state.get("space_traces")
    if previous is not None and previous[0] == [s.ref.key for s in spaces]:
        take_selection(spaces, previous[1])
    mode, label, k = choose_colour(spaces[0].names)
    anchor = choose_anchor(spaces)
    fig, traces = map_figure(spaces, mode, label, anchor)
    st.session_state["space_traces"] = ([s.ref.key for s in spaces], traces)
    st.plotly_chart(fig, key=FIG_KEY, on_select="rerun", selection_mode=("points",))
    ui.download_figure(fig, "space", "dl_space")
    neighbours_panel(spaces, anchor, k)
    st.plotly_chart(shares_figure(spaces, k), key="space_shares")


render()
