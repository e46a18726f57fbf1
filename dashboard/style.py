"""Colours and names shared by every page: one colour per loss and one per relation, everywhere."""

from __future__ import annotations

from sdl.losses import LOSSES
from sdl.relations import RELATION_NAMES, Relation

RELATION_COLORS = {
    "R1": "#b8b8b8",  # disjoint: grey, the only negative
    "R2": "#1a9850",  # identical: green
    "R3": "#f39c12",  # partial: orange
    "R4": "#2c7fb8",  # subset: blue
    "R5": "#d7301f",  # superset: red
}
RELATION_LABELS = {r.short: f"{r.short} {RELATION_NAMES[r]}" for r in Relation}
RELATION_HELP = {
    "R1": "disjoint: no shared label (negative)",
    "R2": "identical: the same label set",
    "R3": "partial: some shared, each has labels the other lacks",
    "R4": "subset: the sample has only some of the anchor's labels",
    "R5": "superset: the sample has all the anchor's labels and more",
}
RELATIONS_CAPTION = (
    "For an anchor with label set S and a sample with label set T: "
    "**R1** disjoint (S∩T=∅, the only negative) · **R2** identical (S=T) · "
    "**R3** partial (overlap, neither contains the other) · **R4** subset (T⊂S, fewer labels) · "
    "**R5** superset (T⊃S, extra labels)."
)

OTHER_COLORS = ["#17becf", "#bcbd22", "#7f7f7f", "#ff9da6", "#9467bd"]


def loss_color(loss: str) -> str:
    """A loss's colour from the registry; names outside it (e.g. "random") get a stable other colour."""
    if loss in LOSSES:
        return LOSSES[loss].color
    return OTHER_COLORS[sum(map(ord, loss)) % len(OTHER_COLORS)]


def loss_colors(losses) -> dict[str, str]:
    """{loss: colour} for a plotly ``color_discrete_map``."""
    return {loss: loss_color(loss) for loss in losses}


def relation_colorscale() -> list[list]:
    """A stepped plotly colourscale for a heatmap of relation ids 1..5 with zmin=0.5, zmax=5.5."""
    scale = []
    for i, key in enumerate(RELATION_COLORS):
        scale.append([i / 5, RELATION_COLORS[key]])
        scale.append([(i + 1) / 5, RELATION_COLORS[key]])
    return scale


def count_colors(values) -> dict:
    """Distinct colours for small integers (number of labels)."""
    palette = ["#c6dbef", "#6baed6", "#2171b5", "#08306b", "#fd8d3c", "#d94801", "#7f2704"]
    return {v: palette[min(int(v), len(palette) - 1)] for v in values}
