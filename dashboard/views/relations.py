"""Relations: what R1..R5 are in a batch, what weight each loss gives them, and how one anchor pulls."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import analysis, ui
from dashboard.style import (
    RELATION_COLORS,
    RELATION_LABELS,
    RELATIONS_CAPTION,
    loss_colors,
    relation_colorscale,
)
from sdl import explain
from sdl.evaluate import seeded_subset
from sdl.explain import MAX_BATCH
from sdl.losses import SDLoss, compared_losses, loss_class, loss_label, loss_options
from sdl.options import Option
from sdl.relations import Relation

SOURCES = ("A run's held-out set", "A dataset", "Generate", "Type")
EXAMPLE_SETS = ["0,1,2", "0,1,2", "0,1", "0,1,2,3", "0,3", "3,4", "2", "1,2,5", "0,1,2,4,5", "4,5"]
RELATION_ORDER = [r.short for r in Relation]
IN_FULL_RUN = "_rel_in_full_run"


@dataclass
class Batch:
    labels: np.ndarray  # (B, C) uint8
    names: list[str]
    thumbs: np.ndarray | None = None
    texts: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    temperature: float = 0.1
    origin: str = ""

    @cached_property
    def token(self) -> str:
        """Fingerprint of the label matrix: widgets tied to this batch reset when it changes, and
        the batch's cached matrices are found by it (not by hashing the arrays on every run)."""
        return fingerprint(self.labels)

    @cached_property
    def embeddings_token(self) -> str:
        """Fingerprint of the embeddings ("" without them): the loss terms' cache key."""
        return "" if self.embeddings is None else fingerprint(self.embeddings)

    @cached_property
    def thumbs_token(self) -> str:
        return "" if self.thumbs is None else fingerprint(self.thumbs)


def fingerprint(array: np.ndarray) -> str:
    """A short hash of an array's bytes, dtype and shape."""
    array = np.ascontiguousarray(array)
    head = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha1(head + array.tobytes()).hexdigest()[:16]


def options_key(options: dict | None) -> str:
    """Loss options as a short, hashable cache key (JSON with sorted keys)."""
    return json.dumps(options or {}, sort_keys=True)


# --- cached work ------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def _dataset(name: str, seed: int, options_key: str = "{}"):
    from sdl.data import load_dataset

    return load_dataset(name, seed=seed, **json.loads(options_key))


# Each cache is keyed on short strings (the batch's fingerprint, the options as JSON); the arrays
# go in as unhashed ``_`` arguments, so a hit costs no hashing of B x B data. A batch's matrices are
# computed once per (batch, loss, options); an anchor change only reads rows from them.


@st.cache_data(show_spinner=False, max_entries=32)
def _relations(token: str, sdl_key: str, _labels: np.ndarray) -> explain.BatchRelations:
    del token  # the key, with sdl_key
    return explain.batch_relations(_labels, json.loads(sdl_key))


@st.cache_data(show_spinner=False, max_entries=64)
def _loss_weights(token: str, loss: str, key: str, _labels: np.ndarray) -> np.ndarray:
    del token
    return explain.comparable_weights(_labels, loss, json.loads(key))


def batch_weights(batch: Batch, losses: tuple[str, ...], options: dict) -> dict[str, np.ndarray]:
    """Every loss's (B, B) comparable weights for the batch, each cached on its own options."""
    return {
        loss: _loss_weights(batch.token, loss, options_key(options.get(loss)), batch.labels)
        for loss in losses
    }


@st.cache_data(show_spinner=False, max_entries=32)
def _batch_weight_table(
    token: str,
    losses: tuple[str, ...],
    key: str,
    _relation: np.ndarray,
    _weights: dict[str, np.ndarray],
) -> pd.DataFrame:
    del token, losses, key
    return explain.weights_by_relation_of(_relation, _weights, None)


@st.cache_data(show_spinner=False, max_entries=16)
def _loss_terms(
    token: str,
    embeddings_token: str,
    loss: str,
    temperature: float,
    key: str,
    _embeddings: np.ndarray,
    _labels: np.ndarray,
) -> explain.BatchLossTerms:
    del token, embeddings_token
    return explain.batch_loss_terms(_embeddings, _labels, loss, temperature, json.loads(key))


@st.cache_data(show_spinner=False, max_entries=8)
def _thumb_uris(token: str, _thumbs: np.ndarray) -> list[str]:
    del token
    return [ui.thumb_data_uri(t) for t in _thumbs]


@st.cache_data(show_spinner=False, max_entries=16)
def _random_label_sets(size: int, classes: int, mean: float, seed: int) -> np.ndarray:
    return explain.random_label_sets(size, classes, mean, seed)


@st.cache_resource(show_spinner=False, max_entries=24)
def _factor_figure(token: str, options: str, which: str, _matrix: np.ndarray, title: str):
    """A factor heatmap, built once per batch and variant (a B x B heatmap takes a while)."""
    del token, options, which  # the key: the batch, the variant and which factor
    return factor_figure(_matrix, title)


@st.cache_resource(show_spinner=False, max_entries=8)
def _counts_figure(token: str, _counts: dict) -> go.Figure:
    del token
    return counts_figure(_counts)


# --- choosing a batch -------------------------------------------------------------------------


def choose_source(has_runs: bool) -> str:
    options = SOURCES if has_runs else SOURCES[1:]
    ui.url_state("rel_source", "source", options)
    return st.radio(
        "Where the batch comes from",
        options,
        horizontal=True,
        key="rel_source",
        help="A batch of label sets: drawn from a run's held-out items (with their embeddings), "
        "from a dataset, generated at random, or typed by hand.",
    )


def batch_from_run() -> Batch | None:
    runs, _ = ui.all_runs()
    runs = ui.with_embeddings(runs)
    by_key = {ref.key: (ref, run) for ref, run in runs}
    default = ui.default_keys(runs, (SDLoss.name,), 1)
    cols = st.columns([3, 2, 1])
    key = cols[0].selectbox(
        "Run",
        list(by_key),
        index=list(by_key).index(default[0]) if default else 0,
        key="rel_run",
    )
    size = cols[1].slider("Batch size", 8, MAX_BATCH, 64, step=8, key="rel_run_batch")
    seed = cols[2].number_input("Draw seed", 0, 10_000, 0, key="rel_run_seed")
    ref, run = by_key[key]
    arrays, problem = ui.run_arrays(ref)
    if problem:
        ui.run_error(problem)
        return None
    rows = seeded_subset(len(arrays["labels"]), size, int(seed))
    return Batch(
        labels=arrays["labels"][rows].astype(np.uint8),
        names=ui.label_names(run, arrays),
        thumbs=arrays["thumbs"][rows] if "thumbs" in arrays else None,
        texts=arrays["texts"][rows] if "texts" in arrays else None,
        embeddings=arrays["embeddings"][rows],
        temperature=float(run.config.get("temperature", 0.1)),
        origin=f"{len(rows)} held-out items of {ref.key}",
    )


def batch_from_dataset() -> Batch | None:
    from sdl.data import DATASETS, dataset_options
    from sdl.data.mosaic import PRESETS

    names = [n for n, info in DATASETS.items() if info.kind in ("image", "tabular")]
    cols = st.columns([3, 2, 2, 1])
    name = cols[0].selectbox("Dataset", names, key="rel_dataset")
    options: dict = {}
    if "preset" in dataset_options(name):  # the mosaics: how often label sets nest
        options["preset"] = cols[1].selectbox(
            "Mosaic preset", list(PRESETS), key="rel_data_preset",
            help="nested: more cells, fewer empty ones, and label sets repeated with one label "
            "added or removed, so subset (R4) and superset (R5) pairs are common.",
        )  # fmt: skip
    size = cols[2].slider("Batch size", 8, MAX_BATCH, 64, step=8, key="rel_data_batch")
    seed = int(cols[3].number_input("Draw seed", 0, 10_000, 0, key="rel_data_seed"))
    missing = DATASETS[name].missing(None)
    if missing:
        st.warning(f"{name} is not available here: {missing}")
        return None
    try:
        splits = _dataset(name, 0, json.dumps(options, sort_keys=True))
    except Exception as exc:  # a loader that fails must not take the page down
        st.error(f"Could not load {name}: {exc}")
        return None
    test = splits.test
    rows = seeded_subset(len(test), size, seed)
    shown_options = "".join(f", {k}={v}" for k, v in options.items())
    return Batch(
        labels=test.labels[rows].astype(np.uint8),
        names=list(test.label_names),
        thumbs=test.thumbs[rows] if test.thumbs is not None else None,
        texts=np.array(test.texts)[rows] if test.texts is not None else None,
        origin=f"{len(rows)} test items of {name}{shown_options}",
    )


def batch_generated() -> Batch:
    cols = st.columns(4)
    classes = cols[0].slider("Labels in the vocabulary", 2, 20, 6, key="rel_gen_classes")
    mean = cols[1].slider(
        "Mean labels per item",
        1.0,
        float(classes),
        min(2.5, float(classes)),
        0.5,
        key="rel_gen_mean",
    )
    size = cols[2].slider("Batch size", 2, MAX_BATCH, 32, key="rel_gen_batch")
    seed = int(cols[3].number_input("Seed", 0, 10_000, 0, key="rel_gen_seed"))
    labels = _random_label_sets(size, classes, float(mean), seed)
    return Batch(labels=labels, names=[str(i) for i in range(classes)], origin="generated")


def batch_typed() -> Batch | None:
    st.caption(
        "One label set per row, as label numbers separated by commas (`0,2,5`); `-` is an empty set. "
        "Add or delete rows at the table's edge."
    )
    typing, numbered = st.columns([1, 1])
    with typing:
        edited = st.data_editor(
            pd.DataFrame({"labels": EXAMPLE_SETS}),
            num_rows="dynamic",
            key="rel_typed",
            column_config={"labels": st.column_config.TextColumn("label set", required=False)},
            width=320,
            height=420,
        )
    labels, problems = analysis.parse_label_sets(list(edited["labels"]))
    with numbered:
        # Blank rows are skipped, so an item's number is its place among the sets read.
        st.dataframe(
            pd.DataFrame(
                {
                    "item": np.arange(len(labels)),
                    "label set": [analysis.format_label_set(r) for r in labels],
                }
            ),
            hide_index=True,
            width=240,
            height=420,
            key="rel_typed_items",
        )
    for problem in problems:
        ui.run_error(problem)
    if len(labels) < 2:
        st.info("Type at least two label sets.")
        return None
    return Batch(labels=labels, names=[str(i) for i in range(labels.shape[1])], origin="typed")


def choose_batch() -> Batch | None:
    runs, _ = ui.all_runs()
    source = choose_source(bool(ui.with_embeddings(runs)))
    if source == SOURCES[0]:
        return batch_from_run()
    if source == SOURCES[1]:
        return batch_from_dataset()
    if source == SOURCES[2]:
        return batch_generated()
    return batch_typed()


def weight_options(loss: str) -> tuple[Option, ...]:
    """The options of ``loss`` that change its pair weights (the ones this page can show)."""
    return tuple(o for o in loss_class(loss).options if o.group == "weights")


def choose_variants(losses: list[str]) -> dict[str, dict]:
    """The weight options of every compared loss (SDL's variants and ablations among them)."""
    chosen: dict[str, dict] = {}
    with st.expander("Loss variants (the options the paper leaves open, and ablations)"):
        for loss in losses:
            options = weight_options(loss)
            if not options:
                continue
            st.markdown(f"**{loss}** · {loss_class(loss).summary}")
            cols = st.columns(max(4, len(options)))
            chosen[loss] = {
                o.name: o.parse(
                    ui.option_input(
                        o, f"rel_opt_{loss}_{o.name}", cols[n], f"{loss}.{o.name}", "radio"
                    )
                )
                for n, o in enumerate(options)
            }
    return chosen


def is_default(loss: str, options: dict | None) -> bool:
    defaults = loss_options(loss)
    return all(defaults.get(k) == v for k, v in (options or {}).items())


def choose_anchor(batch: Batch, rel: np.ndarray) -> int:
    key = f"rel_anchor_{batch.token}"
    ui.url_state(key, "anchor", list(range(len(batch.labels))))
    # A value set through the URL (session state) must not meet a default as well.
    value = {} if key in st.session_state else {"value": explain.most_varied_anchor(rel)}
    return int(
        st.number_input(
            f"Anchor (item 0–{len(batch.labels) - 1})",
            0,
            len(batch.labels) - 1,
            key=key,
            help="The anchor's row of the matrix: how every other item relates to it.",
            **value,
        )
    )


# --- drawing ----------------------------------------------------------------------------------


def relation_matrix_figure(rel: np.ndarray, anchor: int | None = None) -> go.Figure:
    small = len(rel) <= 20
    shapes = []
    if anchor is not None:
        shapes.append(
            {
                "type": "rect",
                "x0": -0.5,
                "x1": len(rel) - 0.5,
                "y0": anchor - 0.5,
                "y1": anchor + 0.5,
                "line": {"color": "black", "width": 2},
            }
        )
    # The layout in one go: add_shape and update_layout each validate the figure again.
    layout = {
        "title": {"text": "Relation of sample (column) to anchor (row)"},
        "height": 480,
        "margin": {"l": 50, "r": 10, "t": 50, "b": 40},
        "xaxis": {
            "title": {"text": "sample"},
            "constrain": "domain",
            "dtick": 1 if small else None,
        },
        "yaxis": {
            "title": {"text": "anchor"},
            "autorange": "reversed",
            "scaleanchor": "x",
            "dtick": 1 if small else None,
        },
        "shapes": shapes,
    }
    heatmap = go.Heatmap(
        z=rel.astype(np.int8),  # small ints travel as 1 byte each
        colorscale=relation_colorscale(),
        zmin=0.5,
        zmax=5.5,
        colorbar={
            "tickvals": [1, 2, 3, 4, 5],
            "ticktext": [RELATION_LABELS[k] for k in RELATION_COLORS],
            "title": {"text": "relation"},
            "len": 0.9,
        },
        hovertemplate="anchor %{y} · sample %{x}<br>R%{z}<extra></extra>",
        xgap=1 if len(rel) <= 64 else 0,
        ygap=1 if len(rel) <= 64 else 0,
    )
    return go.Figure(heatmap, layout)


def counts_figure(counts: dict) -> go.Figure:
    keys = [r.short for r in counts]
    values = list(counts.values())
    bar = go.Bar(
        x=values,
        y=[RELATION_LABELS[k] for k in keys],
        orientation="h",
        marker_color=[RELATION_COLORS[k] for k in keys],
        text=values,
        textposition="auto",
        hovertemplate="%{y}: %{x} pairs<extra></extra>",
    )
    layout = {  # in the constructor: update_layout would validate the figure again
        "title": {"text": "Pairs per relation (off-diagonal)"},
        "height": 300,
        "margin": {"l": 10, "r": 10, "t": 50, "b": 30},
        "yaxis": {"autorange": "reversed"},
        "xaxis": {"title": {"text": "pairs"}},
    }
    return go.Figure(bar, layout)


def factor_figure(matrix: np.ndarray, title: str) -> go.Figure:
    heatmap = go.Heatmap(
        z=matrix.astype(np.float32),  # travels as 4 bytes a cell (plotly sends arrays binary)
        zmin=0,
        zmax=1,
        colorscale="Viridis",
        hovertemplate="anchor %{y} · sample %{x}<br>%{z:.3f}<extra></extra>",
        colorbar={"len": 0.9, "thickness": 12},
    )
    layout = {  # in the constructor: update_layout would validate the figure again
        "title": {"text": title},
        "height": 340,
        "margin": {"l": 40, "r": 10, "t": 50, "b": 30},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x"},
        "xaxis": {"constrain": "domain"},
    }
    return go.Figure(heatmap, layout)


def weights_figure(table: pd.DataFrame, scope: str, names: dict[str, str]) -> go.Figure:
    """Grouped bars per relation; ``names`` gives each loss's legend name (its active variant)."""
    colours = loss_colors(names)
    # (weight, pairs) per loss and relation; plain lists, since a pandas filter, reindex and
    # dropna per loss cost more than the whole figure.
    cells: dict[str, dict[str, tuple[float, int]]] = {loss: {} for loss in names}
    for loss, relation, weight, pairs in zip(
        table["loss"], table["relation"], table["weight"], table["pairs"], strict=True
    ):
        cells.setdefault(loss, {})[relation] = (float(weight), int(pairs))
    traces = []
    # One go.Bar per loss: plotly express builds the same figure several times slower.
    for loss, shown in names.items():
        present = [r for r in RELATION_ORDER if r in cells[loss]]
        weights = np.array([cells[loss][r][0] for r in present], dtype=np.float64)
        traces.append(
            go.Bar(
                name=shown,
                x=present,
                y=weights,
                marker_color=colours[loss],
                text=weights,
                texttemplate="%{y:.2f}",
                textposition="outside",
                cliponaxis=False,
                customdata=np.array([[cells[loss][r][1]] for r in present], dtype=np.int64),
                hovertemplate=f"{shown}<br>%{{x}}: %{{y:.3f}} over %{{customdata[0]}} pairs"
                "<extra></extra>",
            )
        )
    layout = {  # in the constructor: update_layout would validate the figure again
        "barmode": "group",
        "title": {"text": f"Mean pair weight per relation, {scope}"},
        "height": 420,
        "yaxis": {"range": [0, 1.18], "title": {"text": "weight (R2 = 1)"}},
        "xaxis": {
            "title": {"text": "relation of the sample to the anchor"},
            "categoryorder": "array",
            "categoryarray": RELATION_ORDER,
            "tickvals": RELATION_ORDER,
            "ticktext": [RELATION_LABELS[k] for k in RELATION_ORDER],
        },
        "legend": {"title": {"text": "loss"}, "orientation": "h", "y": 1.12, "x": 0},
        "margin": {"t": 90, "b": 40},
    }
    return go.Figure(traces, layout)


def terms_figure(table: pd.DataFrame) -> go.Figure:
    """Each sample's logit gradient against its cosine to the anchor, one trace per relation."""
    traces = []
    # One go.Scatter per relation: plotly express builds the same figure several times slower.
    # The numbers travel as one float array (binary), the label sets as the points' text.
    for relation in RELATION_ORDER:
        rows = table[table["relation"] == relation]
        if rows.empty:
            continue
        traces.append(
            go.Scatter(
                x=rows["cosine"].to_numpy(),
                y=rows["gradient"].to_numpy(),
                mode="markers",
                name=relation,
                legendgroup=relation,
                marker={
                    "color": RELATION_COLORS[relation],
                    "size": 9,
                    "line": {"width": 0.5, "color": "white"},
                },
                text=rows["labels"].tolist(),
                customdata=rows[["sample", "weight", "term"]].to_numpy(dtype=np.float64),
                hovertemplate=f"relation={relation}<br>cosine=%{{x}}<br>gradient=%{{y}}"
                "<br>sample=%{customdata[0]}<br>labels=%{text}"
                "<br>weight=%{customdata[1]:.3f}<br>term=%{customdata[2]:.4f}<extra></extra>",
            )
        )
    # The layout in one go: add_hline and update_layout each validate the figure again.
    zero_line = {
        "type": "line",
        "xref": "x domain",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": 0,
        "y1": 0,
        "line": {"color": "#888", "width": 1},
    }
    layout = {
        "title": {
            "text": "dL/d(logit) per sample: below 0 pulls it toward the anchor, above 0 pushes "
            "it away"
        },
        "height": 420,
        "xaxis": {"title": {"text": "cosine similarity to the anchor"}},
        "yaxis": {"title": {"text": "gradient on the pair's logit"}},
        "legend": {"title": {"text": "relation"}},
        "shapes": [zero_line],
    }
    return go.Figure(traces, layout)


def relation_table_columns(frame: pd.DataFrame) -> dict:
    """Column settings for a table with a relation column: each relation a pill in its colour and
    floats to 3 decimals. A pandas Styler did the same by formatting every cell in Python (0.19 s
    of a 256-item batch's rerun, profiled); these settings are applied by the browser."""
    columns: dict = {
        "relation": st.column_config.MultiselectColumn(
            "relation",
            options=RELATION_ORDER,
            color=[RELATION_COLORS[r] for r in RELATION_ORDER],
            width="small",
            help=" · ".join(RELATION_LABELS.values()),
        )
    }
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            columns[column] = st.column_config.NumberColumn(column, format="%.3f")
    return columns


def item_view(batch: Batch, index: int) -> None:
    labels = analysis.format_label_set(batch.labels[index], batch.names)
    if batch.thumbs is not None:
        st.image(ui.thumb_image(batch.thumbs[index], 128), caption=f"item {index}: {{{labels}}}")
    else:
        st.markdown(f"**item {index}**: {{{ui.md_text(labels)}}}")
        if batch.texts is not None:
            st.caption(str(batch.texts[index])[:300])


def pairs_table(batch: Batch, anchor: int, rel: explain.BatchRelations, sdl_options: dict) -> None:
    table = explain.anchor_pairs_of(rel, anchor)
    table.insert(
        1,
        "labels",
        [analysis.format_label_set(batch.labels[j], batch.names) for j in table["sample"]],
    )
    formula = SDLoss.weight_formula(sdl_options)
    column_config = {
        **relation_table_columns(table),
        "sample": st.column_config.NumberColumn("sample", width="small"),
        "K^s": st.column_config.NumberColumn(
            "K^s", format="%.3f", help="share of the anchor's labels the sample has"
        ),
        "K^d": st.column_config.NumberColumn(
            "K^d", format="%.3f", help="1/(1+labels the sample has beyond the anchor)"
        ),
        "w": st.column_config.NumberColumn(
            formula,
            format="%.3f",
            help=f"weight of the pair under {loss_label(SDLoss.name, sdl_options)}",
        ),
    }
    if batch.thumbs is not None and len(table) <= 256:
        uris = _thumb_uris(batch.thumbs_token, batch.thumbs)
        table.insert(0, "image", [uris[j] for j in table["sample"]])
        column_config["image"] = st.column_config.ImageColumn("image", width="small")
    st.dataframe(
        table,
        hide_index=True,
        height=380,
        column_config=column_config,
        key=f"rel_pairs_{batch.token}",
    )
    ui.download_table(table.drop(columns=["image"], errors="ignore"), "anchor_pairs", "dl_pairs")


def loss_terms_section(batch: Batch, anchor: int, options: dict[str, dict]) -> None:
    st.subheader("How this anchor pulls and pushes, in the run's learned space")
    if batch.embeddings is None:
        st.info(
            "Choose **A run's held-out set** as the batch source to see each pair's loss term and "
            "gradient computed on that run's embeddings."
        )
        return
    cols = st.columns([2, 2, 3])
    losses = compared_losses()
    loss = cols[0].selectbox(
        "Loss",
        losses,
        key="rel_terms_loss",
        format_func=lambda name: loss_label(name, options.get(name)),
    )
    temperature = cols[1].number_input(
        "Temperature τ",
        0.01,
        1.0,
        float(min(max(batch.temperature, 0.01), 1.0)),
        0.01,
        key="rel_tau",
    )
    terms = _loss_terms(
        batch.token,
        batch.embeddings_token,
        loss,
        float(temperature),
        options_key(options.get(loss)),
        batch.embeddings,
        batch.labels,
    )
    table, summary = explain.anchor_loss_terms_of(terms, anchor)
    with cols[2]:
        m = st.columns(3)
        m[0].metric("Anchor loss L_i", f"{summary['anchor_loss']:.3f}")
        m[1].metric("Batch loss", f"{summary['loss']:.3f}")
        m[2].metric("Anchors w/o positives", summary["anchors_without_positives"])
    if not summary["anchor_has_positives"]:
        st.warning("This anchor has no positive in the batch under this loss: it adds nothing.")
    table["labels"] = [
        analysis.format_label_set(batch.labels[j], batch.names) for j in table["sample"]
    ]
    fig = terms_figure(table)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(fig, key="rel_terms_fig")
        st.caption(
            "Each point is one sample of the batch. A positive pair's logit gradient is "
            "(W·softmax − w)/n: the more weight w a loss puts on the pair, the harder it pulls. "
            "Disjoint samples (R1) only ever push."
        )
    with right:
        shown = table.sort_values("gradient")[
            ["sample", "labels", "relation", "cosine", "weight", "term", "gradient"]
        ]
        st.dataframe(
            shown,
            hide_index=True,
            height=420,
            column_config=relation_table_columns(shown),
            key="rel_terms_table",
        )


def factors_section(rel: explain.BatchRelations, sdl_options: dict, token: str) -> None:
    label = loss_label(SDLoss.name, sdl_options)
    formula = SDLoss.weight_formula(sdl_options)
    st.subheader(f"The factors: K^s, K^d and the weight of {label}")
    caption = (
        "K^s = share of the anchor's labels the sample carries (1 when it has them all); "
        "K^d = 1/(1+extra labels) (1 when it has none beyond the anchor)"
    )
    if is_default(SDLoss.name, sdl_options):
        caption += "; w = K^s·K^d is 1 only for R2."
    else:
        caption += f". The weight shown is the variant's, {formula}, not K^s·K^d."
    st.caption(caption)
    cols = st.columns(3)
    # K^s depends on the similarity form alone and K^d on the dissimilarity form alone, so a
    # variant that changes neither (symmetric, components) redraws only the weight's heatmap.
    defaults = loss_options(SDLoss.name)
    forms = {name: sdl_options.get(name, defaults[name]) for name in defaults}
    for col, matrix, title, key, depends in zip(
        cols,
        (rel.k_s, rel.k_d, rel.weight),
        ("K^s similarity", "K^d dissimilarity", formula),
        ("ks", "kd", "w"),
        ({"similarity": forms["similarity"]}, {"dissimilarity": forms["dissimilarity"]}, forms),
        strict=True,
    ):
        fig = _factor_figure(token, options_key(depends), key, matrix, title)
        col.plotly_chart(fig, key=f"rel_{key}")


def weights_section(
    batch: Batch, anchor: int, rel: explain.BatchRelations, options: dict[str, dict]
) -> None:
    st.subheader("What weight each loss gives each relation")
    scope = st.radio(
        "Average over", ("this anchor", "the whole batch"), horizontal=True, key="rel_scope"
    )
    losses = tuple(compared_losses())
    weights = batch_weights(batch, losses, options)
    if scope == "this anchor":
        table = explain.weights_by_relation_of(rel.relation, weights, anchor)
    else:
        key = options_key({loss: options.get(loss) for loss in losses})
        table = _batch_weight_table(batch.token, losses, key, rel.relation, weights)
    names = {loss: loss_label(loss, options.get(loss)) for loss in losses}
    fig = weights_figure(table, scope, names)
    st.plotly_chart(fig, key="rel_weights")
    # A loss's summary describes its default weights; a variant's bars are the variant's own.
    summaries = " · ".join(
        f"**{names[n]}**: {loss_class(n).summary}"
        if is_default(n, options.get(n))
        else f"**{names[n]}**: a variant, the bars show its weights"
        for n in losses
    )
    st.caption(
        summaries + ". Every weight is on one scale, 1 for an identical set (MulSupCon's sum of "
        "1/|P_c| over the shared labels is divided by what an identical sample would get)."
    )
    ui.download_figure(fig, "weights_by_relation", "dl_weights")
    if scope == "this anchor":
        missing = sorted(set(RELATION_ORDER) - set(table["relation"]))
        if missing:
            st.caption(f"No {', '.join(missing)} pair for this anchor in this batch.")


def log_fragment_time(started: float, outcome: str) -> None:
    """Log a rerun of the anchor fragment alone; a full run is logged by app.py (the fragment
    runs inside it), but a fragment's own rerun does not pass through app.py."""
    if not st.session_state.get(IN_FULL_RUN):
        ui.log_timing("Relations (anchor)", started, outcome)


@st.fragment
def anchor_view(batch: Batch, options: dict[str, dict], below: DeltaGenerator) -> None:
    """Everything that depends on the anchor: a change of anchor (or of a widget here) reruns
    only this, reading rows of the batch's cached matrices. ``below`` is the container, further
    down the page, that gets the anchor's pairs, weights and loss terms."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        sdl_options = options.get(SDLoss.name, {})
        rel = _relations(batch.token, options_key(sdl_options), batch.labels)
        left, right = st.columns([3, 2])
        with right:
            anchor = choose_anchor(batch, rel.relation)
            item_view(batch, anchor)
            st.plotly_chart(_counts_figure(batch.token, rel.counts), key="rel_counts")
        with left:
            st.plotly_chart(relation_matrix_figure(rel.relation, anchor), key="rel_matrix")
        with below:
            st.subheader(f"Anchor {anchor}: its pairs")
            pairs_table(batch, anchor, rel, sdl_options)
            weights_section(batch, anchor, rel, options)
            loss_terms_section(batch, anchor, options)
    except BaseException as exc:  # st.rerun and st.stop end a run by raising: log, re-raise
        outcome = type(exc).__name__
        raise
    finally:
        log_fragment_time(started, outcome)


def render() -> None:
    st.title("Relations")
    st.markdown(RELATIONS_CAPTION)
    ui.relation_legend()
    batch = choose_batch()
    if batch is None:
        return
    options = choose_variants(compared_losses())
    sdl_options = options.get(SDLoss.name, {})
    rel = _relations(batch.token, options_key(sdl_options), batch.labels)
    st.caption(
        f"Batch: {batch.origin} · {len(batch.labels)} items · {batch.labels.shape[1]} labels"
    )
    top = st.container()
    factors = st.container()
    below = st.container()
    with factors:
        factors_section(rel, sdl_options, batch.token)
    st.session_state[IN_FULL_RUN] = True
    try:
        with top:
            anchor_view(batch, options, below)
    finally:
        st.session_state[IN_FULL_RUN] = False


render()
