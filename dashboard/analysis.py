"""Table shaping for the pages (no Streamlit, so each is unit-tested): label sets in and out of
text, metric tables over runs, per-relation summaries.

The math is sdl's (sdl.explain, sdl.evaluate, sdl.projection); nothing here computes a weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sdl.evaluate import relation_similarities
from sdl.explain import MAX_BATCH, MAX_LABELS
from sdl.relations import Relation


# --- label sets as text -------------------------------------------------------------------------
def format_label_set(row: np.ndarray, names: Sequence[str] | None = None) -> str:
    """ "0,2,5" (or the label names) for a multi-hot row; "∅" for an empty set."""
    idx = np.flatnonzero(np.asarray(row))
    if len(idx) == 0:
        return "∅"
    return ",".join(str(names[i]) if names is not None else str(i) for i in idx)


def parse_label_sets(
    texts: Sequence[object], num_labels: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Parse label lists like "0,2,5" (commas or spaces) into a (B, C) uint8 multi-hot matrix.

    Blank rows are skipped; "-" or "∅" is an empty label set. C is ``num_labels`` or one more than the
    largest label seen. Returns the matrix and one message per row that could not be read.
    """
    rows: list[set[int]] = []
    problems: list[str] = []
    for number, text in enumerate(texts, start=1):
        if text is None or (isinstance(text, float) and math.isnan(text)):
            continue
        cleaned = str(text).strip()
        if not cleaned:
            continue
        if cleaned in {"-", "∅", "{}"}:
            rows.append(set())
            continue
        parts = [p for p in cleaned.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            values = {int(p) for p in parts}
        except ValueError:
            problems.append(f"row {number}: {cleaned!r} is not a list of label numbers like 0,2,5")
            continue
        if any(v < 0 or v >= MAX_LABELS for v in values):
            problems.append(f"row {number}: labels must be between 0 and {MAX_LABELS - 1}")
            continue
        if num_labels is not None and any(v >= num_labels for v in values):
            problems.append(f"row {number}: labels must be below {num_labels}")
            continue
        rows.append(values)
    if len(rows) > MAX_BATCH:
        problems.append(f"only the first {MAX_BATCH} rows are used")
        rows = rows[:MAX_BATCH]
    width = num_labels or max((max(r) + 1 for r in rows if r), default=1)
    matrix = np.zeros((len(rows), width), dtype=np.uint8)
    for i, r in enumerate(rows):
        matrix[i, sorted(r)] = 1
    return matrix, problems


# --- comparing runs -------------------------------------------------------------------------------

#: metrics where a smaller value is better (matched on the lower-cased name)
LOWER_IS_BETTER = ("loss", "hamming", "error", "coverage", "ranking_loss", "seconds")


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested metrics dict as {"a.b": value}; lists and strings are dropped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


def metric_direction(name: str) -> int | None:
    """+1 if larger is better, -1 if smaller is better, None where neither (relation similarities)."""
    lower = name.lower()
    if "relation" in lower or lower.startswith("profile") or lower in {"epoch", "epochs", "seed"}:
        return None
    if any(word in lower for word in LOWER_IS_BETTER):
        return -1
    return 1


def metrics_summary(rows: Sequence[tuple[str, dict]]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Mean and sample std (NaN for one run) over seeds of every metric, grouped by loss.

    Args:
        rows: (loss name, metrics dict) per run.

    Returns:
        A frame indexed by loss with columns (metric, "mean"|"std"|"runs"), and for each metric with
        a direction the loss that is best by mean.
    """
    records = []
    for loss, metrics in rows:
        flat = flatten_metrics(metrics)
        for metric, value in flat.items():
            records.append({"loss": loss, "metric": metric, "value": value})
    if not records:
        return pd.DataFrame(), {}
    frame = pd.DataFrame(records)
    grouped = frame.groupby(["loss", "metric"])["value"]
    summary = pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=1), "runs": grouped.count()}
    )
    table = summary.unstack("metric").swaplevel(0, 1, axis=1).sort_index(axis=1)
    best: dict[str, str] = {}
    for metric in frame["metric"].unique():
        direction = metric_direction(metric)
        if direction is None:
            continue
        means = table[(metric, "mean")].dropna()
        if len(means) > 1:
            best[metric] = str(means.idxmax() if direction > 0 else means.idxmin())
    return table, best


def display_metrics_table(
    table: pd.DataFrame, best: dict[str, str], digits: int = 3
) -> pd.DataFrame:
    """The summary as "mean ± std" strings, one column per metric, "★" on the best loss."""
    if table.empty:
        return pd.DataFrame()
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))
    out = pd.DataFrame(index=table.index)
    for metric in metrics:
        cells = []
        for loss in table.index:
            mean = table.loc[loss, (metric, "mean")]
            std = table.loc[loss, (metric, "std")]
            if pd.isna(mean):
                cells.append("")
                continue
            # One seed has no spread to show (sample std, as in the CLI's summary.csv).
            text = f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(("★ " + text) if best.get(metric) == loss else text)
        out[metric] = cells
    out.insert(0, "runs", [int(table.loc[loss].xs("runs", level=1).max()) for loss in table.index])
    return out


def relation_box_stats(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], max_anchors: int = 300, seed: int = 0
) -> pd.DataFrame:
    """Box-plot statistics of anchor-sample cosine similarity per relation, pooled over runs.

    Args:
        groups: (embeddings, labels) of each run of one loss (its seeds).

    Returns:
        One row per relation present: relation, q1, median, q3, lower/upper fence (1.5 IQR,
        clipped to the data), mean, pairs.
    """
    pooled: dict[Relation, list[np.ndarray]] = {r: [] for r in Relation}
    for embeddings, labels in groups:
        for r, values in relation_similarities(embeddings, labels, max_anchors, seed).items():
            pooled[r].append(values)
    rows = []
    for r in Relation:
        values = np.concatenate(pooled[r]) if pooled[r] else np.array([])
        if len(values) == 0:
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        iqr = q3 - q1
        rows.append(
            {
                "relation": r.short,
                "q1": float(q1),
                "median": float(median),
                "q3": float(q3),
                "lower": float(max(values.min(), q1 - 1.5 * iqr)),
                "upper": float(min(values.max(), q3 + 1.5 * iqr)),
                "mean": float(values.mean()),
                "pairs": len(values),
            }
        )
    return pd.DataFrame(rows)
