"""Compare: loss curves, the metrics table over seeds, and the relation similarity profile per loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import analysis, ui
from dashboard.sources import RunRef
from dashboard.style import RELATION_COLORS, RELATION_LABELS, RELATIONS_CAPTION, loss_color
from sdl.runs import EMBEDDINGS, Run

DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


@st.cache_data(show_spinner=False, max_entries=32)
def _box_stats(token: tuple, _groups: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    del token  # the cache key (run folders and file times); the arrays are not hashed
    return analysis.relation_box_stats(_groups, max_anchors=300)


def choose_runs(runs: list[tuple[RunRef, Run]]) -> list[tuple[RunRef, Run]]:
    by_key = {ref.key: (ref, run) for ref, run in runs}
    chosen = st.multiselect("Runs", list(by_key), default=list(by_key), key="cmp_runs")
    return [by_key[k] for k in chosen]


def curves_figure(chosen: list[tuple[RunRef, Run]], y_column: str) -> go.Figure:
    fig = go.Figure()
    seen: dict[str, int] = {}
    for ref, run in chosen:
        if run.history is None or y_column not in run.history.columns:
            continue
        number = seen.get(run.loss, 0)
        seen[run.loss] = number + 1
        fig.add_trace(
            go.Scatter(
                x=run.history["epoch"],
                y=run.history[y_column],
                mode="lines",
                name=f"{run.loss} · seed {run.seed}",
                legendgroup=run.loss,
                line={
                    "color": loss_color(run.loss),
                    "dash": DASHES[number % len(DASHES)],
                    "width": 2,
                },
                hovertemplate=f"{ref.key}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
            )
        )
    longest = max((len(run.history) for _, run in chosen if run.history is not None), default=1)
    fig.update_xaxes(dtick=max(1, longest // 10))
    fig.update_layout(
        title=f"Training {y_column} per epoch (colour: loss, dash: seed)",
        height=420,
        xaxis_title="epoch",
        yaxis_title=y_column,
        legend={"title": None},
    )
    return fig


def metrics_section(chosen: list[tuple[RunRef, Run]]) -> None:
    st.subheader("Held-out metrics, mean ± std over seeds")
    rows = [(run.loss, run.metrics) for _, run in chosen if run.metrics]
    if not rows:
        st.info("None of these runs has metrics yet (they appear when a run finishes).")
        return
    table, best = analysis.metrics_summary(rows)
    shown = analysis.display_metrics_table(table, best)
    preferred = [c for c in shown.columns if not c.startswith(("relation", "profile"))]
    others = [c for c in shown.columns if c not in preferred]
    st.dataframe(shown[preferred], key="cmp_metrics")
    st.caption(
        "★ marks the best loss per metric (highest, or lowest for losses and errors). "
        "'runs' is the number of seeds averaged."
    )
    if others:
        with st.expander("Relation similarity metrics"):
            st.dataframe(shown[others])
    flat = table.copy()
    flat.columns = [f"{metric} {stat}" for metric, stat in flat.columns]
    ui.download_table(flat, "metrics", "dl_metrics")


def profile_figure(stats: dict[str, pd.DataFrame]) -> go.Figure:
    fig = go.Figure()
    order = [k for k in RELATION_COLORS]
    for loss, frame in stats.items():
        if frame.empty:
            continue
        fig.add_trace(
            go.Box(
                name=loss,
                x=frame["relation"],
                q1=frame["q1"],
                median=frame["median"],
                q3=frame["q3"],
                lowerfence=frame["lower"],
                upperfence=frame["upper"],
                mean=frame["mean"],
                marker_color=loss_color(loss),
                line={"color": loss_color(loss)},
                fillcolor=loss_color(loss),
                opacity=0.75,
                hovertemplate=None,
            )
        )
    fig.update_layout(
        boxmode="group",
        title="Cosine similarity of anchor-sample pairs, by the sample's relation to the anchor",
        height=460,
        xaxis={
            "title": "relation",
            "categoryorder": "array",
            "categoryarray": order,
            "tickvals": order,
            "ticktext": [RELATION_LABELS[k] for k in order],
        },
        yaxis={"title": "cosine similarity"},
        legend={"title": "loss"},
    )
    return fig


def profile_section(chosen: list[tuple[RunRef, Run]]) -> None:
    st.subheader("Relation similarity profile")
    st.caption(
        "How close each relation sits to its anchor in the learned space (pooled over seeds; "
        "up to 300 anchors per run against every held-out item). SDL should order them "
        "R2 > R4 ≈ R5 > R3 > R1, with R5 clearly below R2; a loss that treats R5 like R2 "
        "(MulSupCon, ANY) does not separate them."
    )
    groups: dict[str, list] = {}
    tokens: dict[str, list] = {}
    for ref, run in chosen:
        if not run.has_embeddings:
            continue
        arrays, problem = ui.run_arrays(ref)
        if problem:
            ui.run_error(problem)
            continue
        groups.setdefault(run.loss, []).append((arrays["embeddings"], arrays["labels"]))
        tokens.setdefault(run.loss, []).append(
            (str(ref.path), (ref.path / EMBEDDINGS).stat().st_mtime_ns)
        )
    if not groups:
        st.info("None of these runs has held-out embeddings.")
        return
    with st.spinner("Computing similarities…"):
        stats = {loss: _box_stats(tuple(tokens[loss]), groups[loss]) for loss in groups}
    fig = profile_figure(stats)
    st.plotly_chart(fig, key="cmp_profile")
    cols = st.columns(2)
    with cols[0]:
        ui.download_figure(fig, "relation_profile", "dl_profile")
    with cols[1]:
        table = pd.concat(
            [frame.assign(loss=loss) for loss, frame in stats.items() if not frame.empty]
        )
        ui.download_table(
            table.set_index(["loss", "relation"]), "relation_profile", "dl_profile_csv"
        )


def render() -> None:
    st.title("Compare")
    st.caption(RELATIONS_CAPTION)
    runs, errors = ui.all_runs()
    if not runs and not errors:
        st.info("No runs yet: train some on the Training page, or build the demo with `make demo`.")
        return
    ui.show_problems(errors, runs)
    with st.expander(f"All runs ({len(runs)})"):
        cols = st.columns(3)
        for number, (ref, run) in enumerate(runs):
            with cols[number % 3]:
                ui.run_card(ref, run)
    chosen = choose_runs(runs)
    if not chosen:
        st.info("Choose at least one run.")
        return
    st.subheader("Loss curves")
    columns = sorted(
        {c for _, run in chosen if run.history is not None for c in run.history.columns} - {"epoch"}
    )
    if columns:
        y_column = st.selectbox(
            "Curve",
            columns,
            index=columns.index("loss") if "loss" in columns else 0,
            key="cmp_curve",
        )
        fig = curves_figure(chosen, y_column)
        st.plotly_chart(fig, key="cmp_curves")
        ui.download_figure(fig, "loss_curves", "dl_curves")
    else:
        st.info("None of these runs has a history yet.")
    metrics_section(chosen)
    profile_section(chosen)


render()
