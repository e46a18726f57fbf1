"""What the pages show, as plain functions of arrays (no Streamlit here, so each is unit-tested).

The math is sdl's (relations, losses, evaluate, projection); this module only arranges it into the
tables the pages draw: label sets in and out of text, per-relation summaries, metric tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sdl import relations
from sdl.evaluate import relation_similarities
from sdl.losses import MulSupConLoss, build_loss
from sdl.relations import Relation

#: the losses whose pair weights the Relations page compares (the label-aware contrastive ones)
COMPARED_LOSSES = ("sdl", "all", "any", "jaccard", "mulsupcon")
MAX_BATCH = 512
MAX_LABELS = 64


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


def random_label_sets(batch: int, num_labels: int, mean_labels: float, seed: int = 0) -> np.ndarray:
    """(batch, num_labels) uint8 random label sets with about ``mean_labels`` labels each.

    Label popularity falls off like 1/rank (a few labels are common, as in real multi-label data),
    so identical, subset and superset pairs appear in a small batch, not only partial and disjoint.
    Every set has at least one label.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    if not 1 <= num_labels <= MAX_LABELS:
        raise ValueError(f"num_labels must be between 1 and {MAX_LABELS}, got {num_labels}")
    if not 1 <= mean_labels <= num_labels:
        raise ValueError(f"mean_labels must be between 1 and {num_labels}, got {mean_labels}")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, num_labels + 1)
    popularity /= popularity.sum()
    sizes = np.clip(1 + rng.poisson(mean_labels - 1, size=batch), 1, num_labels)
    out = np.zeros((batch, num_labels), dtype=np.uint8)
    for i, size in enumerate(sizes):
        out[i, rng.choice(num_labels, size=int(size), replace=False, p=popularity)] = 1
    return out


# --- relations of a batch -----------------------------------------------------------------------


@dataclass(frozen=True)
class SdlOptions:
    """The SDL variant the Relations page shows (see :func:`sdl.relations.sd_weights`)."""

    similarity: str = "anchor"
    dissimilarity: str = "count"
    components: str = "both"
    symmetric: bool = False

    def as_kwargs(self) -> dict:
        return {
            "similarity": self.similarity,
            "dissimilarity": self.dissimilarity,
            "components": self.components,
            "symmetric": self.symmetric,
        }


@dataclass
class BatchRelations:
    relation: np.ndarray  # (B, B) int: relation of sample j to anchor i (1..5)
    k_s: np.ndarray  # (B, B)
    k_d: np.ndarray  # (B, B)
    weight: np.ndarray  # (B, B): the SDL weight for the chosen variant
    counts: dict[Relation, int]  # pairs per relation, diagonal left out


def batch_relations(labels: np.ndarray, options: SdlOptions | None = None) -> BatchRelations:
    options = options or SdlOptions()
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    pair = relations.pair_counts(y)
    rel = relations.relation_matrix(y)
    return BatchRelations(
        relation=rel.numpy(),
        k_s=relations.similarity_factor_from_counts(pair, options.similarity).numpy(),
        k_d=relations.dissimilarity_factor_from_counts(pair, options.dissimilarity).numpy(),
        weight=relations.sd_weights_from_counts(pair, **options.as_kwargs()).numpy(),
        counts=relations.relation_counts(rel),
    )


def comparable_weights(
    labels: np.ndarray, loss: str, options: SdlOptions | None = None
) -> np.ndarray:
    """(B, B) pair weights of a named loss with one view per sample, on a common 0..1 scale.

    sdl, all, any and jaccard weights are already 1 for an identical pair. MulSupCon's effective
    weight sum_{c in S n T} 1/|P_c| is divided by what an identical sample would get,
    sum_{c in S} 1/|P_c|, so it too reads 1 for R2: it then gives 1 to every superset (R5) as well,
    because only the shared labels S n T count.
    """
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    b = y.shape[0]
    kwargs = (options or SdlOptions()).as_kwargs() if loss == "sdl" else {}
    weights, _, _ = build_loss(loss, **kwargs).view_weights(
        y, b, 1, torch.float32, torch.device("cpu")
    )
    weights = weights.numpy().copy()
    if loss == "mulsupcon":
        # (B,): the weight a sample carrying exactly the anchor's labels would get
        identical = MulSupConLoss.label_weights(y, 1)[0].diagonal().numpy()
        weights = np.where(
            identical[:, None] > 0, weights / np.maximum(identical[:, None], 1e-12), 0
        )
    np.fill_diagonal(weights, 0.0)
    return weights


def weights_by_relation(
    labels: np.ndarray,
    anchor: int | None = None,
    losses: Sequence[str] = COMPARED_LOSSES,
    options: SdlOptions | None = None,
) -> pd.DataFrame:
    """Mean comparable weight per (loss, relation) for one anchor's row or the whole batch.

    Columns: loss, relation ("R1".."R5"), name, weight (mean), pairs (how many pairs it averages).
    Relations without any pair are left out.
    """
    rel = batch_relations(labels, options).relation
    mask = ~np.eye(len(rel), dtype=bool)
    if anchor is not None:
        row = np.zeros_like(mask)
        row[anchor] = True
        mask &= row
    rows = []
    for loss in losses:
        weights = comparable_weights(labels, loss, options)
        for r in Relation:
            pick = mask & (rel == int(r))
            if pick.any():
                rows.append(
                    {
                        "loss": loss,
                        "relation": r.short,
                        "name": relations.RELATION_NAMES[r],
                        "weight": float(weights[pick].mean()),
                        "pairs": int(pick.sum()),
                    }
                )
    return pd.DataFrame(rows, columns=["loss", "relation", "name", "weight", "pairs"])


def anchor_pairs(
    labels: np.ndarray,
    anchor: int,
    options: SdlOptions | None = None,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per sample j != anchor: its labels, relation, K^s, K^d and the SDL weight w."""
    batch = batch_relations(labels, options)
    others = [j for j in range(len(labels)) if j != anchor]
    return pd.DataFrame(
        {
            "sample": others,
            "labels": [format_label_set(labels[j], names) for j in others],
            "relation": [Relation(int(batch.relation[anchor, j])).short for j in others],
            "K^s": batch.k_s[anchor, others],
            "K^d": batch.k_d[anchor, others],
            "w": batch.weight[anchor, others],
        }
    )


def anchor_loss_terms(
    embeddings: np.ndarray,
    labels: np.ndarray,
    anchor: int,
    loss: str = "sdl",
    temperature: float = 0.1,
    options: SdlOptions | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Per-pair loss terms and logit gradients of one anchor in a batch of held-out embeddings.

    Returns a table (sample, relation, cosine, weight, term, gradient) for every j != anchor, and a
    summary dict (anchor_loss, loss, anchors_without_positives).
    """
    kwargs = (options or SdlOptions()).as_kwargs() if loss == "sdl" else {}
    loss_fn = build_loss(loss, temperature=temperature, **kwargs)
    features = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    with torch.no_grad():
        out = loss_fn.forward_detailed(features, y, keep_log_prob=True)
        terms = out.pair_terms()[anchor].numpy()
        grads = out.logit_gradient()[anchor].numpy()
        unit = torch.nn.functional.normalize(features, dim=1)
        cosine = (unit @ unit[anchor]).numpy()
    rel = relations.relation_matrix(y)[anchor].numpy()
    others = np.array([j for j in range(len(labels)) if j != anchor], dtype=int)
    table = pd.DataFrame(
        {
            "sample": others,
            "relation": [Relation(int(rel[j])).short for j in others],
            "cosine": cosine[others],
            "weight": out.weights[anchor].numpy()[others],
            "term": terms[others],
            "gradient": grads[others],
        }
    )
    summary = {
        "anchor_loss": float(out.per_anchor[anchor]),
        "loss": float(out.loss),
        "anchor_has_positives": bool(out.has_positives[anchor]),
        "anchors_without_positives": out.anchors_without_positives,
    }
    return table, summary


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
