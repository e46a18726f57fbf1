"""Playground: a toy label set trained live, two losses side by side, the anchor's pulls drawn.

For a class: type label sets (or keep the worked example of docs/method.md), press play and watch
where each loss puts a superset (R5) compared with a subset (R4). The math is sdl.playground.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard.style import RELATION_COLORS, RELATION_LABELS, RELATIONS_CAPTION, loss_color
from sdl import playground as pg
from sdl.relations import Relation

VIEWS = ("map around the anchor (2-D)", "sphere (3-D)")
MAX_FRAMES = 60  # frames sent to the browser; the run records every step
ANCHOR_COLOR = "#222222"


@st.cache_data(show_spinner=False, max_entries=32)
def train(
    text: str, losses: tuple[str, ...], anchor: int, steps: int, temperature: float, seed: int
) -> tuple[dict[str, pg.PlaygroundRun], float]:
    started = time.perf_counter()
    sets = pg.parse_label_sets(text)
    runs = pg.compare(sets, losses, anchor=anchor, steps=steps, temperature=temperature, seed=seed)
    return runs, time.perf_counter() - started


@st.cache_resource(show_spinner=False, max_entries=32)
def animated_figure(
    text: str,
    losses: tuple[str, ...],
    anchor: int,
    steps: int,
    temperature: float,
    seed: int,
    view: str,
) -> go.Figure:
    """The animated figure, built once per choice and shared (st.plotly_chart only reads it): a
    figure rebuilt from its dict validates its 60 frames of traces again, most of a warm visit."""
    runs, _ = train(text, losses, anchor, steps, temperature, seed)
    return playground_figure(runs, view)


def choose() -> dict:
    with st.form("play_form", border=True):
        cols = st.columns([2, 3])
        text = cols[0].text_area(
            "Label sets, one item per line",
            pg.format_label_sets(pg.worked_example(3)),
            height=230,
            key="play_sets",
            help="Labels as numbers, `0,1,2`; `x3` after a set makes three copies; `-` is an item "
            "without labels. The first line's item is item 0.",
        )
        with cols[1]:
            pick = st.columns(2)
            names = list(pg.PLAYGROUND_LOSSES)
            left = pick[0].selectbox("Left loss", names, names.index("sdl"), key="play_a")
            right = pick[1].selectbox("Right loss", names, names.index("mulsupcon"), key="play_b")
            anchor = int(st.number_input("Anchor item", 0, pg.MAX_ITEMS - 1, 0, key="play_anchor"))
            steps = st.slider("Steps", 20, 150, 100, 10, key="play_steps")
            more = st.columns(2)
            tau = more[0].slider("Temperature τ", 0.1, 1.0, 0.3, 0.05, key="play_tau")
            seed = int(more[1].number_input("Seed", 0, 10_000, 0, key="play_seed"))
            view = st.radio("View", VIEWS, horizontal=True, key="play_view")
        st.form_submit_button("Train and play", type="primary", icon=":material/play_arrow:")
    losses = (left,) if left == right else (left, right)
    return {
        "text": text,
        "losses": losses,
        "anchor": anchor,
        "steps": int(steps),
        "temperature": float(tau),
        "seed": seed,
        "view": view,
    }


# --- the figure ----------------------------------------------------------------------------------


def _positions(run: pg.PlaygroundRun, frame: int, flat: bool) -> np.ndarray:
    points = run.frames[frame]
    if flat:
        return pg.anchor_map(points, points[run.anchor])
    return points


def _xyz(points: np.ndarray, flat: bool) -> dict:
    # 3 decimals are finer than a pixel and keep the frames' JSON small.
    names = ("x", "y") if flat else ("x", "y", "z")
    return {n: np.round(points[:, k], 3).tolist() for k, n in enumerate(names)}


def _panel_traces(run: pg.PlaygroundRun, frame: int, flat: bool, scale: float, full: bool) -> list:
    """One panel's traces at one frame, as plain dicts: a line per item from the anchor, then the
    points by relation, then the anchor. ``full`` adds what stays fixed (colours, names, hover);
    frames carry only what moves, which plotly merges into the traces."""
    kind = "scatter" if flat else "scatter3d"
    at = _positions(run, frame, flat)
    here = at[run.anchor]
    others = np.arange(len(at)) != run.anchor
    traces = []
    for j in np.flatnonzero(others):
        pull = float(run.pulls[frame, j])
        trace = {
            "type": kind,
            **_xyz(np.stack([here, at[j]]), flat),
            "line": {
                "color": RELATION_COLORS[Relation(int(run.relations[j])).short],
                "width": round(0.5 + 9 * abs(pull) / scale, 2),
                "dash": "solid" if pull <= 0 else "dot",  # dotted: the loss pushes it away
            },
        }
        if full:
            trace |= {"mode": "lines", "hoverinfo": "skip", "showlegend": False}
        traces.append(trace)
    for r in Relation:
        rows = np.flatnonzero(others & (run.relations == int(r)))
        trace = {"type": kind, **_xyz(at[rows], flat)}
        if full:
            text = [
                f"item {j} {{{','.join(map(str, sorted(run.label_sets[j])))}}}<br>"
                f"{RELATION_LABELS[r.short]} · weight {run.weights[j]:.2f}"
                for j in rows
            ]
            trace |= {
                "mode": "markers",
                "marker": {"color": RELATION_COLORS[r.short], "size": 11 if flat else 6},
                "name": RELATION_LABELS[r.short],
                "legendgroup": r.short,
                "text": text,
                "hovertemplate": "%{text}<extra></extra>",
            }
        traces.append(trace)
    trace = {"type": kind, **_xyz(here[None], flat)}
    if full:
        symbol = {"size": 18, "symbol": "star"} if flat else {"size": 8, "symbol": "diamond"}
        trace |= {
            "mode": "markers",
            "marker": {"color": ANCHOR_COLOR, **symbol},
            "name": "anchor",
            "hoverinfo": "name",
        }
    traces.append(trace)
    return traces


def playground_figure(runs: dict[str, pg.PlaygroundRun], view: str) -> go.Figure:
    """Both losses side by side in one animated figure, played in step; a slider picks a step."""
    flat = view == VIEWS[0]
    names = list(runs)
    steps = len(next(iter(runs.values())).frames) - 1
    shown = np.unique(np.linspace(0, steps, min(MAX_FRAMES, steps + 1)).round().astype(int))
    specs = [[{"type": "xy" if flat else "scene"} for _ in names]]
    fig = make_subplots(
        1,
        len(names),
        specs=specs,
        subplot_titles=[f"<b style='color:{loss_color(n)}'>{n}</b>" for n in names],
        horizontal_spacing=0.04,
    )
    scales = {n: max(float(np.abs(r.pulls).max()), 1e-12) for n, r in runs.items()}
    for col, name in enumerate(names, start=1):
        for trace in _panel_traces(runs[name], 0, flat, scales[name], full=True):
            if col > 1:
                trace["showlegend"] = False
            fig.add_trace(trace, row=1, col=col)
    frames = [
        {
            "name": str(int(f)),
            "data": [
                t for n in names for t in _panel_traces(runs[n], int(f), flat, scales[n], False)
            ],
        }
        for f in shown
    ]
    play = {"frame": {"duration": 60, "redraw": not flat}, "transition": {"duration": 0}}
    fig.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.02},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": 1.12,
                "showactive": False,
                "buttons": [
                    {"label": "▶ play", "method": "animate", "args": [None, play]},
                    {
                        "label": "❚❚ pause",
                        "method": "animate",
                        "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}],
                    },
                ],
            }
        ],
        sliders=[
            {
                "currentvalue": {"prefix": "step "},
                "pad": {"t": 30},
                "steps": [
                    {
                        "label": str(int(f)),
                        "method": "animate",
                        "args": [
                            [str(int(f))],
                            {"mode": "immediate", "frame": {"redraw": not flat}},
                        ],
                    }
                    for f in shown
                ],
            }
        ],
    )
    if flat:
        # Radius = chord distance to the anchor: sqrt(2) is 90 degrees away, 2 the far pole.
        for col in range(1, len(names) + 1):
            for radius, dash in ((np.sqrt(2), "dot"), (2.0, "solid")):
                fig.add_shape(
                    type="circle",
                    x0=-radius,
                    y0=-radius,
                    x1=radius,
                    y1=radius,
                    line={"color": "#cccccc", "width": 1, "dash": dash},
                    row=1,
                    col=col,
                )
            axis = {"range": [-2.1, 2.1], "visible": False}
            fig.update_xaxes(axis, row=1, col=col)
            fig.update_yaxes({**axis, "scaleanchor": f"x{col if col > 1 else ''}"}, row=1, col=col)
    else:
        box = {"range": [-1.1, 1.1], "showticklabels": False, "title": ""}
        fig.update_scenes(xaxis=box, yaxis=box, zaxis=box, aspectmode="cube")
    # The frames are plain dicts built above from fixed keys; validating thousands of them
    # would cost seconds per draw.
    return go.Figure(data=fig.data, layout=fig.layout, frames=frames, _validate=False)


def cosine_table(runs: dict[str, pg.PlaygroundRun]) -> pd.DataFrame:
    """Per relation: the weight and the final mean cosine with the anchor under each loss."""
    rows = {}
    for name, run in runs.items():
        cos = pg.relation_cosines(run)
        others = np.arange(len(run.relations)) != run.anchor
        for r, value in cos.items():
            row = rows.setdefault(RELATION_LABELS[r.short], {})
            row[f"{name} weight"] = float(run.weights[others & (run.relations == int(r))].mean())
            row[f"{name} final cosine"] = value
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


# --- the page --------------------------------------------------------------------------------------

st.title("Playground")
st.caption(
    "A few label sets as free points on a sphere, trained live with two losses from the same start. "
    "Lines join the anchor to every item: thicker = pulled harder now (the logit gradient), "
    "dotted = pushed away. Colours are relations to the anchor."
)
st.caption(RELATIONS_CAPTION)
chosen = choose()
try:
    runs, seconds = train(
        chosen["text"],
        chosen["losses"],
        chosen["anchor"],
        chosen["steps"],
        chosen["temperature"],
        chosen["seed"],
    )
except ValueError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
first = next(iter(runs.values()))
sets = first.label_sets
st.caption(
    f"{len(sets)} items, anchor item {first.anchor} "
    f"{{{','.join(map(str, sorted(sets[first.anchor])))}}}; "
    f"{chosen['steps']} steps per loss trained in {seconds:.2f} s. Press ▶ play."
)
st.plotly_chart(animated_figure(**chosen), key="play_fig")
st.markdown("**Where each relation ends** (mean over its items; weight on the scale identical = 1)")
st.dataframe(cosine_table(runs).style.format("{:.2f}"), key="play_table")
