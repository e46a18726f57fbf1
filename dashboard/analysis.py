"""Table shaping for the pages (no Streamlit, so each is unit-tested): label sets in and out of
text, metric tables over runs, per-relation summaries.

The math is sdl's (sdl.explain, sdl.evaluate, sdl.projection); nothing here computes a weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sdl.evaluate import relation_similarities, seed_summary
from sdl.explain import MAX_BATCH, MAX_LABELS
from sdl.losses import loss_label
from sdl.relations import Relation
from sdl.runs import data_key, differing_settings

#: the metric spaces of a run's metrics.json; the head is what the loss trained
SPACES = ("head", "encoder")
#: the anchor-centred relation AUCs, in the order the pages show them (R4 = R5 by construction,
#: so their cosine profile is no evidence; these AUCs are)
RELATION_AUCS = ("R2>R5", "R2>R4", "R4>R5", "R4>R3", "R5>R3", "positive>R1")
#: settings a comparison groups by elsewhere: the data (its own section), the loss (the row's
#: name) and the seed (what is pooled)
_GROUPED_ELSEWHERE = ("seed", "loss", "loss_options", "dataset", "dataset_options")


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
    """+1 if larger is better, -1 if smaller is better, None where neither (relation similarities,
    and ``probe_*``: how the probe ran, such as the labels it evaluated, not how well)."""
    lower = name.lower()
    if "relation" in lower or lower.startswith("profile") or lower in {"epoch", "epochs", "seed"}:
        return None
    if lower.rsplit(".", 1)[-1].startswith("probe_"):
        return None
    if any(word in lower for word in LOWER_IS_BETTER):
        return -1
    return 1


def comparison_groups(configs: Sequence[dict]) -> list[tuple[str, str]]:
    """(data, group) of each run: only runs with the same data and the same trained settings
    apart from the seed are ever pooled.

    The data is :func:`sdl.runs.data_key`. The group is the loss with its non-default options
    (:func:`sdl.losses.loss_label`), then every other trained setting that differs between the
    runs on the same data, e.g. "sdl · epochs=6".
    """
    keys = [data_key(c) for c in configs]
    labels = []
    for config, key in zip(configs, keys, strict=True):
        same_data = [c for c, k in zip(configs, keys, strict=True) if k == key]
        differing = differing_settings(same_data, ignore=_GROUPED_ELSEWHERE)
        loss, options = str(config.get("loss", "?")), config.get("loss_options") or {}
        try:
            label = loss_label(loss, options)
        except (ValueError, TypeError, AttributeError):  # a loss this checkout does not know
            shown = ", ".join(f"{k}={v}" for k, v in sorted(dict(options).items()))
            label = f"{loss} ({shown})" if shown else loss
        extra = [f"{name}={config.get(name)}" for name in differing]
        labels.append(" · ".join([label, *extra]))
    return list(zip(keys, labels, strict=True))


def space_metrics(metrics: dict, space: str) -> dict | None:
    """One space's metrics; a run from before both spaces were measured holds only the encoder's,
    at the top level. None when the run did not measure ``space``."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if isinstance(metrics.get(space), dict):
        return metrics[space]
    if space == "encoder" and not any(isinstance(metrics.get(s), dict) for s in SPACES):
        return metrics
    return None


def card_metrics(metrics: dict) -> str:
    """The three numbers a run card shows: head mAP, kNN-Jaccard@10 and the R2>R5 AUC (the
    encoder's for a run that measured only it)."""
    space = "head" if space_metrics(metrics, "head") is not None else "encoder"
    values = space_metrics(metrics, space) or {}
    parts = []
    for name, shown in (("mAP", f"{space} mAP"), ("knn_jaccard@10", "kNN-J@10")):
        if isinstance(values.get(name), int | float):
            parts.append(f"{shown} {values[name]:.3f}")
    aucs = values.get("relation_auc")
    auc = aucs.get("R2>R5") if isinstance(aucs, dict) else None
    if isinstance(auc, int | float) and math.isfinite(auc):
        parts.append(f"R2>R5 AUC {auc:.3f}")
    return " · ".join(parts)


def metrics_summary(rows: Sequence[tuple[str, dict]]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Mean, sample std and 95% t interval over seeds of every metric, grouped by the row's name
    (:func:`sdl.evaluate.seed_summary`, the statistics of the CLI and the studies).

    Args:
        rows: (group name, metrics dict) per run; only runs of one group are pooled.

    Returns:
        A frame indexed by group with columns (metric, "mean"|"std"|"ci_low"|"ci_high"|"runs"),
        and for each metric with a direction the group that is best by mean.
    """
    values: dict[tuple[str, str], list[float]] = {}
    for name, metrics in rows:
        for metric, value in flatten_metrics(metrics).items():
            values.setdefault((name, metric), []).append(value)
    if not values:
        return pd.DataFrame(), {}
    records = []
    for (name, metric), seeds in values.items():
        summary = seed_summary(seeds)
        records.append(
            {"loss": name, "metric": metric, "mean": summary["mean"], "std": summary["std"],
             "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "runs": summary["n"]}
        )  # fmt: skip
    frame = pd.DataFrame(records).set_index(["loss", "metric"])
    order = list(dict.fromkeys(name for name, _ in rows))
    table = frame.unstack("metric").swaplevel(0, 1, axis=1).sort_index(axis=1).loc[order]
    best: dict[str, str] = {}
    for metric in dict.fromkeys(m for _, m in values):
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
    """The summary as "mean [95% interval]" strings, one column per metric, "★" on the best."""
    if table.empty:
        return pd.DataFrame()
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))
    runs = table.xs("runs", axis=1, level=1).max(axis=1)
    columns: dict[str, list] = {"runs": runs.astype(int).tolist()}
    losses = list(table.index)
    for metric in metrics:
        # whole columns as arrays: a scalar .loc per cell cost a second per page on 40 metrics
        means = table[(metric, "mean")].to_numpy(float)
        lows = table[(metric, "ci_low")].to_numpy(float)
        highs = table[(metric, "ci_high")].to_numpy(float)
        cells = []
        for loss, mean, low, high in zip(losses, means, lows, highs, strict=True):
            if np.isnan(mean):
                cells.append("")
                continue
            # One seed has no interval to show.
            text = f"{mean:.{digits}f}"
            if not (np.isnan(low) or np.isnan(high)):
                text += f" [{low:.{digits}f}, {high:.{digits}f}]"
            cells.append(("★ " + text) if best.get(metric) == loss else text)
        columns[metric] = cells
    return pd.DataFrame(columns, index=table.index)


def relation_auc_table(rows: Sequence[tuple[str, dict]]) -> pd.DataFrame:
    """The relation AUCs of each group over its seeds: loss, relation, n, mean, std, ci_low,
    ci_high (rows: (group name, one space's metrics)); relations in :data:`RELATION_AUCS` order,
    then any others."""
    values: dict[tuple[str, str], list[float]] = {}
    for name, metrics in rows:
        aucs = metrics.get("relation_auc")
        for relation, value in (aucs if isinstance(aucs, dict) else {}).items():
            if isinstance(value, int | float):
                values.setdefault((name, relation), []).append(float(value))
    known = {r: i for i, r in enumerate(RELATION_AUCS)}
    keys = sorted(values, key=lambda k: (known.get(k[1], len(known)), k[1]))
    order = list(dict.fromkeys(name for name, _ in rows))
    keys.sort(key=lambda k: order.index(k[0]))
    records = [{"loss": n, "relation": r, **seed_summary(values[(n, r)])} for n, r in keys]
    columns = ["loss", "relation", "n", "mean", "std", "ci_low", "ci_high"]
    return pd.DataFrame(records, columns=columns)


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
