"""Compare: loss curves; per data set, the metrics over seeds, the relation AUCs and the SD surface
per loss; and a study folder's tables when one exists.

Runs are pooled only over seeds: runs on other data, or with any other trained setting that
differs, are their own rows (:func:`dashboard.analysis.comparison_groups`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import analysis, sources, ui
from dashboard.sources import RunRef
from dashboard.style import RELATIONS_CAPTION, loss_color
from sdl.runs import Run, differing_settings

DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def choose_runs(runs: list[tuple[RunRef, Run]]) -> list[tuple[RunRef, Run]]:
    by_key = {ref.key: (ref, run) for ref, run in runs}
    ui.url_state("cmp_runs", "runs", list(by_key), multi=True)
    if "cmp_runs" in st.session_state:
        # Another runs folder: drop the runs that went, choose the ones that came.
        known = st.session_state.get("_cmp_known", list(by_key))
        kept = [k for k in st.session_state["cmp_runs"] if k in by_key]
        st.session_state["cmp_runs"] = kept + [k for k in by_key if k not in known]
    st.session_state["_cmp_known"] = list(by_key)
    default = {} if "cmp_runs" in st.session_state else {"default": list(by_key)}
    chosen = st.multiselect("Runs", list(by_key), key="cmp_runs", **default)
    return [by_key[k] for k in chosen]


def choose_space(runs: list[tuple[RunRef, Run]]) -> str:
    ui.url_state("cmp_space", "space", analysis.SPACES)
    measured = [run.metrics for _, run in runs if run.metrics]
    head = any(analysis.space_metrics(m, "head") is not None for m in measured)
    # Runs from before both spaces were measured hold the encoder's metrics only: open on those.
    index = {} if "cmp_space" in st.session_state else {"index": 0 if head or not measured else 1}
    if measured and not head:
        st.caption(
            "These runs measured only the encoder's space (they were trained before both spaces "
            "were measured); retrain them to see the head's."
        )
    return st.radio(
        "Space",
        analysis.SPACES,
        horizontal=True,
        key="cmp_space",
        **index,
        format_func=lambda s: {"head": "head (what the loss trained)", "encoder": "encoder"}[s],
        help="Every run measures both: the projection head's output, which the loss shapes, "
        "and the encoder's, which a downstream task would use.",
    )


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


def metrics_section(rows: list[tuple[str, dict]], key: str) -> None:
    """The metrics table of one data key: one row per group, mean [95% interval] over seeds."""
    table, best = analysis.metrics_summary(rows)
    shown = analysis.display_metrics_table(table, best)
    evidence = ("relation", "profile", "sd_")
    preferred = [c for c in shown.columns if not c.startswith(evidence)]
    others = [c for c in shown.columns if c not in preferred]
    st.dataframe(shown[preferred], key=f"cmp_metrics_{key}")
    st.caption(
        "Mean over seeds with its 95% t interval in brackets (none for one seed); ★ marks the "
        "best group per metric (highest, or lowest for losses and errors); 'runs' is the number "
        "of seeds pooled."
    )
    if others:
        with st.expander("Relation AUCs, SD agreement and relation profile, as numbers"):
            st.dataframe(shown[others])
    flat = table.copy()
    flat.columns = [f"{metric} {stat}" for metric, stat in flat.columns]
    ui.download_table(flat, "metrics", f"dl_metrics_{key}")


def auc_figure(table: pd.DataFrame, colors: dict[str, str], title: str) -> go.Figure:
    """Relation AUCs per group: bars at the mean over seeds, whiskers the 95% interval."""
    bars = []
    for name, frame in table.groupby("loss", sort=False):
        has_ci = frame["ci_high"].notna()
        bars.append(
            go.Bar(
                name=name,
                x=frame["relation"],
                y=frame["mean"],
                marker_color=colors[name],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": np.where(has_ci, frame["ci_high"] - frame["mean"], 0.0),
                    "arrayminus": np.where(has_ci, frame["mean"] - frame["ci_low"], 0.0),
                },
                customdata=np.stack([frame["n"], frame["ci_low"], frame["ci_high"]], 1),
                hovertemplate="%{x}: %{y:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}]"
                " over %{customdata[0]} seeds<extra>" + name + "</extra>",
            )
        )
    chance = {  # the line add_hline would draw, with its label
        "type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": 0.5, "y1": 0.5,
        "line": {"color": "gray", "dash": "dot"},
    }  # fmt: skip
    layout = {  # in the constructor: add_trace, add_hline and update_layout validate again
        "barmode": "group",
        "title": {"text": title},
        "height": 420,
        "xaxis": {
            "title": {
                "text": "A>B: the chance that an anchor's A sample sits closer than its B sample"
            }
        },
        "yaxis": {"title": {"text": "AUC (mean over seeds, 95% interval)"}, "range": [0, 1.05]},
        "legend": {"title": {"text": ""}},
        "shapes": [chance],
        "annotations": [
            {
                "text": "chance",
                "xref": "x domain",
                "x": 1,
                "xanchor": "right",
                "yref": "y",
                "y": 0.5,
                "yanchor": "bottom",
                "showarrow": False,
            }
        ],
    }
    return go.Figure(bars, layout)


def sd_cells(surfaces: list[list[dict]]) -> pd.DataFrame:
    """Mean cosine by (extra, missing) label counts: pair-weighted over shared counts in each
    run, then the mean over runs (seeds count equally)."""
    per_run = []
    for surface in surfaces:
        try:
            frame = pd.DataFrame(surface)
        except (ValueError, TypeError):  # not a list of records: nothing to draw
            continue
        if frame.empty or not {"cosine", "pairs", "extra", "missing"} <= set(frame.columns):
            continue
        frame = frame.assign(weighted=frame["cosine"] * frame["pairs"])
        cells = frame.groupby(["extra", "missing"])[["weighted", "pairs"]].sum()
        per_run.append(cells["weighted"] / cells["pairs"])
    if not per_run:
        return pd.DataFrame()
    mean = pd.concat(per_run, axis=1).mean(axis=1)
    return mean.unstack("extra").sort_index()


def sd_surface_figure(cells: dict[str, pd.DataFrame]) -> go.Figure:
    """One heatmap per group in one figure (three a row) on one colour scale: one chart for the
    browser to draw, where six charts took most of a warm visit to the page."""
    low = min(float(np.nanmin(c.to_numpy())) for c in cells.values())
    high = max(float(np.nanmax(c.to_numpy())) for c in cells.values())
    rows = -(-len(cells) // 3)  # at most three a row, the rows as even as they go
    cols = -(-len(cells) // rows)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=list(cells),
        horizontal_spacing=0.06,
        vertical_spacing=0.5 / rows,
    )
    for number, frame in enumerate(cells.values()):
        fig.add_trace(
            go.Heatmap(
                z=frame.to_numpy(),
                x=[str(c) for c in frame.columns],
                y=[str(i) for i in frame.index],
                coloraxis="coloraxis",
                hovertemplate="extra %{x}, missing %{y}: cosine %{z:.3f}<extra></extra>",
            ),
            row=number // cols + 1,
            col=number % cols + 1,
        )
    fig.update_xaxes(title_text="extra labels")
    # 0 missing at the top, so that (0 extra, 0 missing), the same labels, is the top-left cell
    fig.update_yaxes(title_text="missing labels", autorange="reversed")
    fig.update_layout(
        height=300 * rows,
        margin={"l": 40, "r": 10, "t": 40, "b": 40},
        coloraxis={"colorscale": "Viridis", "cmin": low, "cmax": high,
                   "colorbar": {"title": {"text": "cosine"}}},
    )  # fmt: skip
    return fig


def sd_surface_section(groups: dict[str, list[dict]], key: str, space: str) -> None:
    """One heatmap per group, side by side, on one colour scale."""
    cells = {name: sd_cells(surfaces) for name, surfaces in groups.items()}
    cells = {name: c for name, c in cells.items() if not c.empty}
    if not cells:
        return
    st.markdown(f"**The SD surface, {space} space**: mean cosine to the anchor by extra labels "
                "(the sample's labels the anchor lacks) and missing labels (the anchor's labels "
                "the sample lacks), for samples that share at least one label.")  # fmt: skip
    st.plotly_chart(sd_surface_figure(cells), key=f"cmp_sd_{key}")
    st.caption(
        "SDL pulls a sample less the more labels it adds or lacks, so its cells should darken "
        "away from the top-left corner (0 extra, 0 missing: the same labels)."
    )


def data_section(
    number: int, data: str, chosen: list, labels: list[str], space: str, header: bool = True
) -> None:
    """Everything about the runs on one data key; nothing here is pooled with other data."""
    if header:
        st.header(f"On {data}")
    configs = [run.config for _, run in chosen]
    differing = differing_settings(configs, ignore=("seed", "loss", "loss_options"))
    if differing:
        st.caption(
            ":material/call_split: Settings that differ between these runs: "
            + ", ".join(ui.md_text(name) for name in differing)
            + ". Each value is its own row; only seeds are pooled."
        )
    rows = []
    for (_, run), label in zip(chosen, labels, strict=True):
        metrics = analysis.space_metrics(run.metrics, space) if run.metrics else None
        if metrics is not None:
            rows.append((label, metrics))
    if not rows:
        st.info(f"None of these runs has {space} metrics yet (they appear when a run finishes).")
        return
    key = "" if number == 0 else f"_{number}"
    metrics_section(rows, key.strip("_") or "0")
    names = list(dict.fromkeys(label for label, _ in rows))
    losses = {label: run.loss for (_, run), label in zip(chosen, labels, strict=True)}
    colors = {name: loss_color(losses[name]) for name in names}
    aucs = analysis.relation_auc_table(rows)
    if not aucs.empty:
        st.subheader("Anchor-centred relation evidence")
        fig = auc_figure(aucs, colors, f"Relation AUCs per loss, {space} space, on {data}")
        st.plotly_chart(fig, key=f"cmp_auc{key}")
        st.caption(
            "R2>R5 and R2>R4: does the loss keep a sample with the same labels closer than one "
            "with extra or missing labels? R4>R3 and R5>R3: a subset or superset closer than a "
            "partial overlap? Each is measured per anchor, then averaged; 0.5 is no separation."
        )
        ui.download_figure(fig, "relation_aucs", f"dl_auc{key}")
    surfaces: dict[str, list] = {}
    for label, metrics in rows:
        if isinstance(metrics.get("sd_surface"), list) and metrics["sd_surface"]:
            surfaces.setdefault(label, []).append(metrics["sd_surface"])
    sd_surface_section(surfaces, str(number), space)


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
    space = choose_space(runs)
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
    groups = analysis.comparison_groups([run.config for _, run in chosen])
    by_data: dict[str, list[int]] = {}
    for index, (data, _) in enumerate(groups):
        by_data.setdefault(data, []).append(index)
    if len(by_data) > 1:
        st.info(
            f"These runs saw {len(by_data)} different data sets or dataset options; each has its "
            "own section below, never pooled."
        )
    for number, (data, indices) in enumerate(by_data.items()):
        data_section(
            number, data, [chosen[i] for i in indices], [groups[i][1] for i in indices], space
        )
    study_section(space)


STUDY_DIR_KEY = "cmp_study_dir"


def study_folders() -> tuple[list[Path], str | None]:
    """Study folders (holding study.json): those under the project's ``studies/`` and the one the
    sidebar names; and why the sidebar's is refused, if it is."""
    found = sorted(p.parent for p in (sources.REPO / "studies").glob("*/study.json"))
    text = st.session_state.get(STUDY_DIR_KEY, "").strip()
    if not text:
        return found, None
    path, problem = sources.resolve_runs_dir(text)
    if problem:
        return found, problem
    if not (path / "study.json").is_file():
        return found, f"`{ui.md_text(text)}` holds no study.json (`python -m sdl study` writes it)."
    return list(dict.fromkeys([path, *found])), None


def _study_table(folder: Path, name: str) -> pd.DataFrame | None:
    try:
        return pd.read_csv(folder / f"{name}.csv")
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def study_section(space: str) -> None:
    """A study folder's tables (intervals and verdicts), then its runs' AUCs and SD surface."""
    with st.sidebar:
        st.text_input(
            "Study folder",
            key=STUDY_DIR_KEY,
            placeholder="studies/yeast-quick",
            help="A folder `python -m sdl study` wrote; those under studies/ are found by themselves.",
        )
    folders, problem = study_folders()
    if problem:
        st.sidebar.error(problem)
    if not folders:
        return
    st.header("Study")
    names = {str(f.relative_to(sources.REPO)) if f.is_relative_to(sources.REPO) else str(f): f
             for f in folders}  # fmt: skip
    chosen = st.selectbox("Study folder", list(names), key="cmp_study")
    folder = names[chosen]
    try:
        info = json.loads((folder / "study.json").read_text())
    except (OSError, ValueError) as exc:
        ui.run_error(f"{chosen}/study.json cannot be read ({exc})")
        return
    st.caption(
        f"{ui.md_text(info.get('dataset', '?'))}, preset {ui.md_text(info.get('preset', '?'))}: "
        "every run saw the same split; only the seed varies between a loss's runs."
    )
    for name, title in (
        ("summary", "Mean, std and 95% interval over seeds"),
        ("paired", "sdl minus each other loss, paired by seed: mean, 95% interval, verdict"),
    ):
        table = _study_table(folder, name)
        if table is not None:
            st.markdown(f"**{title}**")
            st.dataframe(table, hide_index=True, key=f"cmp_study_{name}")
    if not (folder / "runs").is_dir():
        # the project ships its studies' tables only; their runs are rebuilt by the command
        st.caption(
            f"This folder holds the study's tables but not its runs: `python -m sdl study "
            f"--dataset {ui.md_text(info.get('dataset', '?'))} --preset "
            f"{ui.md_text(info.get('preset', '?'))} --out {ui.md_text(chosen)}` trains them "
            "(finished runs are skipped), and their relation AUCs and SD surfaces then show here."
        )
        return
    study_runs, errors = ui.folder_runs(folder / "runs", "study")
    ui.show_problems(errors, study_runs)
    if study_runs:
        groups = analysis.comparison_groups([run.config for _, run in study_runs])
        labels = [label for _, label in groups]
        data_section(100, groups[0][0], study_runs, labels, space, header=False)


render()
