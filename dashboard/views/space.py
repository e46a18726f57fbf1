"""Space: UMAP maps of several runs' held-out embeddings (the projection head's space or the
encoder's), aligned, with neighbours of a chosen item, a box/lasso selection's make-up, a label
filter, and the space forming over the epochs (snapshots) for two runs side by side."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import analysis, ui
from dashboard.components import space_map
from dashboard.sources import RunRef
from dashboard.style import RELATION_COLORS, RELATION_LABELS, RELATIONS_CAPTION, count_colors
from sdl import projection
from sdl.explain import relations_to_anchor
from sdl.losses import compared_losses
from sdl.relations import Relation
from sdl.runs import (
    EMBEDDINGS,
    Run,
    RunError,
    data_key,
    differing_settings,
    read_snapshots,
    space_embeddings,
)

COLOR_MODES = ("relation to the anchor", "a label", "number of labels")
MAX_RUNS = 6
MAP_KEY = "space_map"
SPACES = {
    "head": "projection head (where the loss acts)",
    "encoder": "encoder output (what a classifier would use)",
}
FILTER_MODES = ("carrying all of them", "exactly them")
MAX_THUMBS = 40
RETRAIN = "retrain it, or rebuild the demo with make demo"
# A UMAP map of a thousand items takes seconds; the first in a session also compiles UMAP.
UMAP_SECONDS_PER_1000 = 6.0
UMAP_COMPILE_SECONDS = 20.0


@dataclass
class Space:
    """One run's held-out set, ready to draw."""

    ref: RunRef
    run: Run
    arrays: dict[str, np.ndarray]
    names: list[str]
    coords: np.ndarray  # (N, 2) aligned
    keys: np.ndarray  # (N,) id + label set: the same item in two runs has the same key
    values: np.ndarray  # (N, D) the chosen space's embeddings
    stamp: int  # mtime_ns of its embeddings file: the caches' key for what is derived from it

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
def _projection(path: str, mtime_ns: int, params: projection.UmapParams, space: str) -> np.ndarray:
    del mtime_ns
    coords, _ = projection.cached_projection(path, params, space)
    return coords


@st.cache_data(show_spinner=False, max_entries=64)
def _keys(path: str, mtime_ns: int, _arrays: dict) -> np.ndarray:
    del path, mtime_ns  # the cache key; the arrays are not hashed
    return item_keys(_arrays)


@st.cache_data(show_spinner=False, max_entries=64)
def _label_texts(
    path: str, mtime_ns: int, names: tuple[str, ...], _labels: np.ndarray
) -> list[str]:
    """Each item's label set as text, for the map's hover card: made once per run file (at
    10,000 items, formatting them on every rerun was a third of a lasso's server time)."""
    del path, mtime_ns  # the cache key, with the names; the labels are not hashed
    return [analysis.format_label_set(y, list(names)) for y in _labels]


@st.cache_data(show_spinner=False, max_entries=16)
def _aligned(coords: tuple[np.ndarray, ...], keys: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    return projection.align_projections(list(coords), list(keys))


@st.cache_data(show_spinner=False, max_entries=32)
def _shares(
    path: str, mtime_ns: int, space: str, _embeddings: np.ndarray, _labels: np.ndarray, k: int
) -> dict:
    del path, mtime_ns, space  # the cache key; the arrays are not hashed
    shares = projection.neighbour_relation_shares(_embeddings, _labels, k, max_items=1000)
    return {r.short: v for r, v in shares.items()}


# --- the link: runs, space, anchor and colouring in the URL ---------------------------------------


def read_link(runs: list[tuple[RunRef, Run]]) -> list[str]:
    """Once per session, the URL's runs/space/anchor/colour become the widgets' values; invalid
    values are ignored and named in the returned notes."""
    if st.session_state.get("space_link_read"):
        return []
    st.session_state["space_link_read"] = True
    params, notes = st.query_params, []
    by_key = {ref.key: run for ref, run in runs}
    if "runs" in params:
        wanted = [k for k in params["runs"].split(",") if k]
        unknown = [k for k in wanted if k not in by_key]
        known = [k for k in wanted if k in by_key][:MAX_RUNS]
        if unknown:
            notes.append(f"runs not found: {', '.join(unknown)}")
        if known:
            st.session_state["space_data"] = data_key(by_key[known[0]].config)
            st.session_state["space_runs_wanted"] = known
    if "space" in params:
        if params["space"] in SPACES:
            st.session_state["space_space"] = params["space"]
        else:
            notes.append(f"space {params['space']!r} (not one of {', '.join(SPACES)})")
    if "colour" in params:
        if params["colour"] in COLOR_MODES:
            st.session_state["space_colour"] = params["colour"]
        else:
            notes.append(f"colour {params['colour']!r}")
    if "anchor" in params:
        run_key, _, item = params["anchor"].rpartition(":")
        if run_key in by_key and item.isdigit():
            st.session_state["space_anchor_run"] = run_key
            st.session_state["space_anchor_item"] = int(item)
            st.session_state["space_anchor_from_link"] = True
        else:
            notes.append(f"anchor {params['anchor']!r}")
    return notes


def write_link(spaces: list[Space], space: str, anchor: tuple[Space, int], mode: str) -> None:
    """The view's state into the URL, only where it changed (each write is a browser history step)."""
    wanted = {
        "runs": ",".join(s.ref.key for s in spaces),
        "space": space,
        "anchor": f"{anchor[0].ref.key}:{anchor[1]}",
        "colour": mode,
    }
    current = {k: st.query_params.get(k) for k in wanted}
    if current != wanted:
        st.query_params.update(wanted)


# --- choices ------------------------------------------------------------------------------------


def choose_runs(runs: list[tuple[RunRef, Run]]) -> list[tuple[RunRef, Run]]:
    """The data first, then runs of that data only: runs of different data are never aligned."""
    groups: dict[str, list[tuple[RunRef, Run]]] = {}
    for ref, run in runs:
        groups.setdefault(data_key(run.config), []).append((ref, run))
    datas = list(groups)
    if st.session_state.get("space_data") not in datas:
        st.session_state["space_data"] = datas[0]
    data = st.selectbox(
        "Data",
        datas,
        key="space_data",
        format_func=lambda d: f"{d} · {len(groups[d])} run{'s' if len(groups[d]) != 1 else ''}",
        help="Space compares only runs that saw the same data (dataset and its options).",
    )
    group = groups[data]
    by_key = {ref.key: (ref, run) for ref, run in group}
    wanted = st.session_state.pop("space_runs_wanted", None)
    if wanted is not None:
        others = [k for k in wanted if k not in by_key]
        if others:
            names = sorted({data_key(run.config) for ref, run in runs if ref.key in others})
            st.warning(
                ui.md_text(
                    f"Not compared: {', '.join(others)} saw other data ({'; '.join(names)}) than "
                    f"{data}. Space aligns only runs of the same data."
                ),
                icon=":material/block:",
            )
        st.session_state["space_runs"] = [k for k in wanted if k in by_key]
    elif "space_runs" not in st.session_state or any(
        k not in by_key for k in st.session_state["space_runs"]
    ):
        st.session_state["space_runs"] = ui.default_keys(group, tuple(compared_losses()), 3)
    chosen = st.multiselect(
        "Runs to compare (the first is the reference the others are aligned to)",
        list(by_key),
        max_selections=MAX_RUNS,
        key="space_runs",
    )
    picked = [by_key[k] for k in chosen]
    differ = differing_settings(
        [run.config for _, run in picked], ignore=("seed", "loss", "loss_options")
    )
    if differ:
        parts = [f"{name} ({', '.join(str(v) for v in values)})" for name, values in differ.items()]
        st.caption(
            ":material/info: Besides loss and seed, these runs also differ in: "
            + ui.md_text("; ".join(parts))
            + " (in the order of the runs above), so not every difference is the loss's."
        )
    return picked


def choose_space() -> str:
    if st.session_state.get("space_space") not in SPACES:
        st.session_state["space_space"] = "head"
    return st.radio(
        "Space",
        list(SPACES),
        format_func=SPACES.get,
        horizontal=True,
        key="space_space",
        help="The head's output is where the loss acts; the encoder's output (ending in a ReLU) "
        "is what a downstream classifier would use, and its cosines are all close together.",
    )


def choose_umap() -> projection.UmapParams:
    """UMAP settings behind an Apply button: a new map costs seconds, so a slider step must not."""
    with st.expander("UMAP settings"), st.form("space_umap_form", border=False):
        cols = st.columns(3)
        neighbours = cols[0].slider("Neighbours", 5, 50, 15, key="space_nn")
        min_dist = cols[1].slider("Minimum distance", 0.0, 0.99, 0.1, 0.05, key="space_md")
        cols[2].form_submit_button("Apply", icon=":material/refresh:")
    return projection.UmapParams(
        n_neighbors=int(st.session_state.get("space_nn", neighbours)),
        min_dist=float(st.session_state.get("space_md", min_dist)),
    )


def choose_colour(names: list[str]) -> tuple[str, int, int]:
    cols = st.columns([3, 2, 2])
    mode = cols[0].radio("Colour by", COLOR_MODES, horizontal=True, key="space_colour")
    label = 0
    if mode == "a label":
        label = names.index(cols[1].selectbox("Label", names, key="space_label"))
    k = cols[2].slider("Neighbours to show", 3, 12, 8, key="space_k")
    return mode, label, int(k)


def choose_filter(names: list[str]) -> tuple[list[int], str]:
    cols = st.columns([4, 2])
    # In the URL as ?labels=a&labels=b&match=..., so a link reopens the filtered view.
    ui.url_state("space_filter", "labels", names, multi=True)
    ui.url_state("space_filter_mode", "match", FILTER_MODES)
    picked = cols[0].multiselect(
        "Show only items with the labels", names, key="space_filter", placeholder="all items"
    )
    how = cols[1].radio("Items", FILTER_MODES, horizontal=True, key="space_filter_mode")
    return [names.index(n) for n in picked], how


def filter_mask(labels: np.ndarray, wanted: list[int], how: str) -> np.ndarray:
    """Which items pass the label filter: all when no label is picked."""
    if not wanted:
        return np.ones(len(labels), dtype=bool)
    has = labels[:, wanted].astype(bool).all(1)
    if how == "exactly them":
        has &= labels.astype(bool).sum(1) == len(wanted)
    return has


# --- loading ---------------------------------------------------------------------------------------


def load_spaces(
    chosen: list[tuple[RunRef, Run]], params: projection.UmapParams, space: str
) -> list[Space]:
    """The chosen runs' maps in one space; a run without that space is named and left out (all
    at once, when none has it: the caller then says so once)."""
    read = [(ref, run, *ui.run_arrays(ref)) for ref, run in chosen]
    quiet = not any(a is not None and space_embeddings(a, space) is not None for *_, a, _ in read)
    loaded = []
    for ref, run, arrays, problem in read:
        if problem:
            if space == "encoder" or not quiet:  # said once, not again in the fallback
                ui.run_error(problem)
            continue
        if space_embeddings(arrays, space) is None:
            if quiet:
                continue
            st.info(
                ui.md_text(f"{ref.key}: this run has no {space} embeddings; {RETRAIN}."),
                icon=":material/info:",
            )
            continue
        loaded.append((ref, run, arrays))
    if not loaded:
        return []
    stamps = {ref.key: (ref.path / EMBEDDINGS).stat().st_mtime_ns for ref, _, _ in loaded}
    coords = []
    todo = [
        (ref, arrays)
        for ref, _, arrays in loaded
        if projection.read_cached_projection(ref.path, params, space) is None
    ]
    bar = st.progress(0.0, text="Projecting…") if todo else None
    total = sum(len(a["labels"]) for _, a in todo) / 1000 * UMAP_SECONDS_PER_1000
    estimate = total + UMAP_COMPILE_SECONDS
    for number, (ref, _, arrays) in enumerate(loaded):
        if bar is not None:
            bar.progress(
                number / len(loaded),
                text=f"UMAP of {ref.key}'s {space} space ({len(arrays['labels'])} items); "
                f"{len(todo)} new map{'s' if len(todo) != 1 else ''}, about {estimate:.0f} s in all "
                "(the first map in a session also compiles UMAP)…",
            )
        try:
            coords.append(_projection(str(ref.path), stamps[ref.key], params, space))
        except Exception as exc:  # a broken file or an impossible map: say so, keep the others
            ui.run_error(f"{ref.key}: cannot project ({exc})")
            coords.append(None)
    if bar is not None:
        bar.empty()
    kept = [(item, c) for item, c in zip(loaded, coords, strict=True) if c is not None]
    if not kept:
        return []
    keys = [_keys(str(ref.path), stamps[ref.key], arrays) for (ref, _, arrays), _ in kept]
    aligned = _aligned(tuple(c for _, c in kept), tuple(keys))
    return [
        Space(
            ref,
            run,
            arrays,
            ui.label_names(run, arrays),
            xy,
            k,
            space_embeddings(arrays, space),
            stamps[ref.key],
        )
        for ((ref, run, arrays), _), xy, k in zip(kept, aligned, keys, strict=True)
    ]


# --- the anchor --------------------------------------------------------------------------------------


def take_gesture(spaces: list[Space]) -> None:
    """Turn the map's last gesture into state before the widgets are drawn: a click on a point
    makes it the anchor; a box or lasso selects items (kept by key, so every run shows them)."""
    gesture = space_map.new_gesture(MAP_KEY)
    if gesture is None:
        return
    by_key = {s.ref.key: s for s in spaces}
    space = by_key.get(gesture.get("run"))
    if space is None:  # a gesture on runs no longer shown
        return
    n = len(space.labels)
    if "anchor" in gesture:
        row = gesture["anchor"]
        if isinstance(row, int) and 0 <= row < n:
            st.session_state["space_anchor_run"] = space.ref.key
            st.session_state["space_anchor_item"] = row
    elif "selected" in gesture:
        rows = [r for r in gesture["selected"] if isinstance(r, int) and 0 <= r < n]
        if rows:
            st.session_state["space_selected"] = sorted({str(space.keys[r]) for r in rows})


def choose_anchor(spaces: list[Space]) -> tuple[Space, int]:
    keys = [s.ref.key for s in spaces]
    if st.session_state.get("space_anchor_run") not in keys:
        st.session_state["space_anchor_run"] = keys[0]
    cols = st.columns([3, 2, 5])
    run_key = cols[0].selectbox("Anchor from run", keys, key="space_anchor_run")
    space = spaces[keys.index(run_key)]
    n = len(space.labels)
    if not 0 <= st.session_state.get("space_anchor_item", 0) < n:
        if st.session_state.pop("space_anchor_from_link", False):
            st.caption(f"The link's anchor item is not in {ui.md_text(run_key)}; item 0 instead.")
        st.session_state["space_anchor_item"] = 0
    item = int(cols[1].number_input("Anchor item", 0, n - 1, key="space_anchor_item"))
    cols[2].caption(
        "On the map: hover a point to see the item (its thumbnail or text, and labels); click it "
        "to make it the anchor; drag a lasso (or a box, from the map's toolbar) to select items. "
        "Scroll zooms, a double click resets."
    )
    return space, item


# --- drawing -------------------------------------------------------------------------------------------


def legend(
    spaces: list[Space], mode: str, label: int, anchor_labels: np.ndarray
) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Per space, each item's category (an index); each category's legend name and colour, in
    legend order. One legend for every panel: a category has one colour in all of them."""
    if mode == "relation to the anchor":
        order = list(RELATION_COLORS)
        cats = [
            np.array([f"R{v}" for v in relations_to_anchor(anchor_labels, s.labels)])
            for s in spaces
        ]
        entries = [(RELATION_LABELS[r], RELATION_COLORS[r]) for r in order]
    elif mode == "a label":
        names = spaces[0].names
        name = names[label] if label < len(names) else str(label)
        order = ["no", "yes"]
        cats = [np.where(s.labels[:, label] > 0, "yes", "no") for s in spaces]
        entries = [(f"no {name}", "#d0d0d0"), (f"has {name}", "#e4572e")]
    else:
        counts = [s.labels.astype(bool).sum(1) for s in spaces]
        values = sorted(set(np.concatenate(counts).tolist()))
        colours = count_colors(values)
        order = [str(v) for v in values]
        cats = [c.astype(str) for c in counts]
        entries = [(f"{v} label{'s' if v != 1 else ''}", colours[v]) for v in values]
    index = {c: i for i, c in enumerate(order)}
    return [np.array([index[c] for c in cat], dtype=int) for cat in cats], entries


def map_panels(
    spaces: list[Space],
    mode: str,
    label: int,
    anchor: tuple[Space, int],
    keep: list[np.ndarray] | None = None,
    selected: list[str] | None = None,
) -> tuple[list[space_map.Panel], list[tuple[str, str]]]:
    """The map's panels, one per run, and its legend.

    ``keep`` (one mask per space) is the label filter: the others are drawn faint, not hoverable.
    ``selected`` (item keys) is the box/lasso selection, highlighted in every run that has them.
    """
    anchor_space, anchor_item = anchor
    anchor_key = anchor_space.keys[anchor_item]
    cats, entries = legend(spaces, mode, label, anchor_space.labels[anchor_item])
    panels = []
    for pos, space in enumerate(spaces):
        label_texts = _label_texts(
            str(space.ref.path), space.stamp, tuple(space.names), space.labels
        )
        mask = keep[pos] if keep is not None else np.ones(len(space.labels), dtype=bool)
        rows = np.flatnonzero(mask)
        here = space.find(anchor_key)
        texts = space.arrays.get("texts")
        picked = None
        if selected:
            picked = np.flatnonzero(np.isin(space.keys[rows], selected))
        panels.append(
            space_map.Panel(
                run=space.ref.key,
                title=f"{space.ref.key} · {space.run.loss}",
                xy=space.coords[rows],
                rows=rows,
                ids=space.arrays["ids"][rows],
                cats=cats[pos][rows],
                labels=[label_texts[r] for r in rows],
                thumbs=space.arrays["thumbs"][rows] if "thumbs" in space.arrays else None,
                texts=[str(t) for t in texts[rows]] if texts is not None else None,
                faint=space.coords[~mask] if not mask.all() else None,
                anchor=tuple(space.coords[here]) if here is not None else None,
                selected=picked,
            )
        )
    return panels, entries


def selection_panel(spaces: list[Space], anchor: tuple[Space, int], selected: list[str]) -> None:
    """What the box/lasso selection holds: label mix, relation mix to the anchor, thumbnails."""
    anchor_labels = anchor[0].labels[anchor[1]]
    with st.container(border=True):
        head = st.columns([6, 1])
        head[0].markdown(f"**Selected: {len(selected)} items** (box or lasso on a map)")
        if head[1].button("Clear", key="space_clear_selection"):
            st.session_state.pop("space_selected", None)
            st.rerun()
        wanted = set(selected)
        cols = st.columns(len(spaces))
        for col, space in zip(cols, spaces, strict=True):
            rows = np.flatnonzero(np.isin(space.keys, list(wanted)))
            with col:
                st.markdown(f"**{ui.md_text(space.ref.key)}** · {len(rows)} of them here")
                if not len(rows):
                    continue
                counts = space.labels[rows].astype(bool).sum(0)
                order = np.argsort(-counts)[:8]
                st.caption(
                    "Labels: "
                    + ui.md_text(
                        ", ".join(f"{space.names[j]} {counts[j]}" for j in order if counts[j])
                    )
                )
                rel = relations_to_anchor(anchor_labels, space.labels[rows])
                shares = {r.short: int((rel == int(r)).sum()) for r in Relation}
                st.caption(
                    "Relation to the anchor: "
                    + " · ".join(f"{k} {v}" for k, v in shares.items() if v)
                )
                if "thumbs" in space.arrays:
                    shown = rows[:MAX_THUMBS]
                    st.image(
                        [ui.thumb_image(space.arrays["thumbs"][j], 48) for j in shown], width=48
                    )
                    if len(rows) > len(shown):
                        st.caption(f"the first {len(shown)} of {len(rows)}")
                elif "texts" in space.arrays:
                    st.dataframe(
                        pd.DataFrame({"text": [str(space.arrays["texts"][j])[:120] for j in rows]}),
                        hide_index=True,
                        height=200,
                    )


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
            idx, sims = projection.nearest_neighbours(space.values, here, k)
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
        "Caption: relation to the anchor · labels · cosine similarity in the chosen space "
        "(all its dimensions, not the 2-D map). A good space puts R2 first, then R4/R5, and no R1."
    )


def shares_figure(spaces: list[Space], k: int, space: str) -> go.Figure:
    names = [s.ref.key for s in spaces]
    shares = [
        _shares(
            str(s.ref.path),
            s.stamp,
            space,
            s.values,
            s.labels,
            k,
        )
        for s in spaces
    ]
    bars = [
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
        for r in RELATION_COLORS
    ]
    layout = {  # in the constructor: add_trace and update_layout validate the figure again
        "barmode": "stack",
        "height": 170 + 40 * len(spaces),
        "title": {
            "text": f"Who are an item's {k} nearest neighbours in the {space} space? "
            "(share per relation, over up to 1000 items)",
            "y": 0.98,
            "yanchor": "top",
        },
        "xaxis": {"title": {"text": "% of neighbours"}, "range": [0, 100]},
        "yaxis": {"autorange": "reversed"},
        # The legend above the bars, under the title: below, it ran into the axis title.
        "legend": {
            "orientation": "h",
            "y": 1.02,
            "yanchor": "bottom",
            "x": 0,
            "title": {"text": ""},
            "traceorder": "normal",
        },
        "margin": {"l": 10, "r": 10, "t": 80, "b": 40},
    }
    return go.Figure(bars, layout)


# --- how the space formed --------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def _paths(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's snapshots as (E, n, 2) aligned paths, with their epochs and ids."""
    del mtime_ns
    snaps = read_snapshots(path)
    return projection.snapshot_paths(snaps["embeddings"]), snaps["epochs"], snaps["ids"]


FORMING_RELATIONS = ("R2", "R4", "R5")


def forming_figure(
    runs: list[tuple[Space, np.ndarray, np.ndarray, np.ndarray]], anchor
) -> go.Figure:
    """Plotly animation: one frame per epoch, the runs side by side, the anchor's R2/R4/R5 bright.
    It opens on the first snapshot (epoch 0), so Play shows the space forming."""
    anchor_labels = anchor[0].labels[anchor[1]]
    anchor_id = anchor[0].arrays["ids"][anchor[1]]
    epochs = runs[0][2]
    fig = make_subplots(
        rows=1,
        cols=len(runs),
        shared_xaxes="all",
        shared_yaxes="all",
        subplot_titles=[f"{s.ref.key} · {s.run.loss}" for s, *_ in runs],
        horizontal_spacing=0.03,
    )
    colours, sizes = [], []
    for space, _, _, ids in runs:
        # each snapshot item's labels, found by id (an id the run no longer holds: no labels)
        order = np.argsort(space.arrays["ids"], kind="stable")
        found = np.searchsorted(space.arrays["ids"], ids, sorter=order)
        found = order[np.minimum(found, len(order) - 1)]
        known = space.arrays["ids"][found] == ids
        labels = np.where(known[:, None], space.labels[found], 0)
        rel = np.array([f"R{v}" for v in relations_to_anchor(anchor_labels, labels)])
        bright = np.isin(rel, FORMING_RELATIONS)
        colours.append(np.where(bright, [RELATION_COLORS[r] for r in rel], "#d6d6d6").tolist())
        sizes.append(np.where(bright, 8, 5).tolist())
    for col, (_space, paths, _, ids) in enumerate(runs, start=1):
        fig.add_trace(
            go.Scatter(
                x=paths[0, :, 0],
                y=paths[0, :, 1],
                mode="markers",
                marker={"color": colours[col - 1], "size": sizes[col - 1], "line": {"width": 0}},
                text=[f"id {i}" for i in ids],
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        hit = np.flatnonzero(ids == anchor_id)
        fig.add_trace(
            go.Scatter(
                x=paths[0, hit, 0],
                y=paths[0, hit, 1],
                mode="markers",
                marker={"symbol": "star-open", "size": 14, "color": "black", "line": {"width": 2}},
                hovertemplate="anchor<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    frames = []
    for e, epoch in enumerate(epochs):
        data = []
        for _, paths, _, ids in runs:
            hit = np.flatnonzero(ids == anchor_id)
            data.append(go.Scatter(x=np.round(paths[e, :, 0], 3), y=np.round(paths[e, :, 1], 3)))
            data.append(go.Scatter(x=paths[e, hit, 0], y=paths[e, hit, 1]))
        frames.append(go.Frame(data=data, name=str(int(epoch))))
    fig.frames = frames
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}
    fig.update_layout(
        height=480,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        plot_bgcolor="#fafafa",
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0,
                "y": -0.05,
                "xanchor": "left",
                "yanchor": "top",
                "buttons": [
                    {
                        "label": "Play",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                "frame": {"duration": 500, "redraw": False},
                                "transition": {"duration": 300},
                                "fromcurrent": True,
                            },
                        ],
                    },
                    {"label": "Pause", "method": "animate", "args": [[None], step_args]},
                ],
            }
        ],
        sliders=[
            {
                "active": 0,  # the untrained space first: Play shows it forming
                "x": 0.12,
                "y": -0.02,
                "len": 0.88,
                "currentvalue": {"prefix": "epoch "},
                "steps": [
                    {
                        "label": str(int(ep)),
                        "method": "animate",
                        "args": [[str(int(ep))], step_args],
                    }
                    for ep in epochs
                ],
            }
        ],
    )
    # Frames do not rescale the axes (no redraw), so fix them to every epoch's extent, padded:
    # otherwise points (the anchor's star among them) that move past the first frame's range
    # leave the panel.
    xy = np.concatenate([paths.reshape(-1, 2) for _, paths, _, _ in runs])
    low, high = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-9)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False,
                     range=[float(low[0] - pad[0]), float(high[0] + pad[0])])  # fmt: skip
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False,
                     range=[float(low[1] - pad[1]), float(high[1] + pad[1])])  # fmt: skip
    return fig


def forming_panel(spaces: list[Space], anchor: tuple[Space, int]) -> None:
    st.subheader("How the head's space formed, epoch by epoch")
    with_snaps = [s for s in spaces if s.run.has_snapshots]
    for s in spaces:
        if not s.run.has_snapshots:
            st.caption(ui.md_text(f"{s.ref.key}: this run has no snapshots; {RETRAIN}."))
    if not with_snaps:
        return
    keys = [s.ref.key for s in with_snaps]
    default = (
        keys[:1]
        + [
            k for s, k in zip(with_snaps, keys, strict=True) if s.run.loss != with_snaps[0].run.loss
        ][:1]
    )
    current = st.session_state.get("space_forming")
    if current is None or any(k not in keys for k in current):
        # other runs than last time (another data set): the default pair, not an empty choice
        st.session_state["space_forming"] = default
    picked = st.multiselect(
        "Runs to play side by side", keys, max_selections=2, key="space_forming"
    )
    runs, stamps = [], []
    for key in picked:
        space = with_snaps[keys.index(key)]
        try:
            mtime = (space.ref.path / "snapshots.npz").stat().st_mtime_ns
            paths, epochs, ids = _paths(str(space.ref.path), mtime)
        except (OSError, RunError, ValueError) as exc:
            ui.run_error(f"{key}: cannot read its snapshots ({exc})")
            continue
        runs.append((space, paths, epochs, ids))
        stamps.append((str(space.ref.path), mtime))
    if not runs:
        return
    if len(runs) == 2 and not np.array_equal(runs[0][2], runs[1][2]):
        st.warning("These runs snapshotted different epochs; showing the first run only.")
        runs, stamps = runs[:1], stamps[:1]
    st.caption(
        "Head embeddings of a fixed subset of held-out items after every epoch (epoch 0: untrained), "
        "each frame on its own principal axes, turned and scaled onto the next by Procrustes, and "
        "the second run's last frame onto the first's. Bright: the anchor's R2, R4 and R5 samples "
        "(the positives a good loss pulls in); grey: the rest. Press Play, or drag the epoch slider."
    )
    # The animation (every epoch's frame) is built once per pair of runs and anchor: a colour
    # change, a click elsewhere or a lasso reruns the page but reuses it.
    key = json.dumps([stamps, anchor[0].ref.key, int(anchor[1])])
    st.plotly_chart(_forming_figure(key, runs, anchor), key="space_forming_fig")


@st.cache_resource(show_spinner=False, max_entries=8)
def _forming_figure(key: str, _runs: list, _anchor: tuple) -> go.Figure:
    """The second run's paths aligned onto the first run's last frame, then the figure."""
    del key  # the runs' snapshot files (path, mtime) and the anchor
    runs = list(_runs)
    if len(runs) == 2:
        first, (space, paths, epochs, ids) = runs[0], runs[1]
        paths = projection.align_paths(paths, ids, first[1][-1], first[3])
        runs[1] = (space, paths, epochs, ids)
    return forming_figure(runs, _anchor)


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
    notes = read_link(runs)
    if notes:
        st.caption(":material/link_off: Ignored in the link: " + ui.md_text("; ".join(notes)))
    chosen = choose_runs(runs)
    if not chosen:
        st.info("Choose at least one run.")
        return
    space = choose_space()
    params = choose_umap()
    spaces = load_spaces(chosen, params, space)
    if not spaces and space == "head":
        st.info(
            "None of these runs has head embeddings (they were written before both spaces were "
            f"stored): showing the encoder's space instead. To see the head's, {RETRAIN}.",
            icon=":material/info:",
        )
        space = "encoder"
        spaces = load_spaces(chosen, params, space)
    if not spaces:
        return
    st.markdown(f"Everything below is in the **{SPACES[space]}** space.")
    # The map's last gesture becomes the anchor (or the selection) before the anchor widgets
    # are drawn.
    take_gesture(spaces)
    mode, label, k = choose_colour(spaces[0].names)
    wanted, how = choose_filter(spaces[0].names)
    anchor = choose_anchor(spaces)
    keep = [filter_mask(s.labels, wanted, how) for s in spaces]
    if wanted:
        st.caption(
            " · ".join(
                f"{s.ref.key}: {int(m.sum())} of {len(m)} items match"
                for s, m in zip(spaces, keep, strict=True)
            )
        )
    selected = st.session_state.get("space_selected")
    panels, entries = map_panels(spaces, mode, label, anchor, keep if wanted else None, selected)
    view = f"{space}:{','.join(s.ref.key for s in spaces)}"
    space_map.space_map(panels, entries, view, key=MAP_KEY)
    write_link(spaces, space, anchor, mode)
    if selected:
        selection_panel(spaces, anchor, selected)
    neighbours_panel(spaces, anchor, k)
    st.plotly_chart(shares_figure(spaces, k, space), key="space_shares")
    forming_panel(spaces, anchor)


render()
