"""Evaluation of a learned space on frozen embeddings, and summaries over seeds.

One space's metrics (:func:`evaluate_embeddings`, see docs/method.md, "Measuring what the weights
do to a space"), all on the held-out split:

- ``mAP``, ``micro_f1``, ``macro_f1``: a linear probe (multi-label logistic regression on
  standardised features, :func:`linear_probe`) over the ``probe_labels`` labels with a positive in
  both splits, with its fit's ``probe_iterations`` and ``probe_converged``;
- ``knn_jaccard@10``, ``precision@10``: retrieval from the training embeddings;
- ``relation_profile``: mean cosine per relation R1..R5 over pooled pairs (R4 = R5 by symmetry);
- ``relation_auc`` / ``relation_auc_anchors``: anchor-centred AUCs, e.g. ``"R2>R5"``;
- ``sd_agreement``: per-anchor Spearman rho between cosine and the SD weight / Jaccard;
- ``sd_surface``: mean cosine (and AUC against R1) by (shared, extra, missing) label counts.

The relation metrics share one pass: :func:`anchor_labels` (the labels' side, once per split) and
:func:`anchor_rows` (one sort of each anchor's cosines, once per space).

Seed summaries (:func:`seed_summary`, :func:`paired_difference`) are the one place where runs over
seeds become a mean, a spread, a 95% interval and a verdict.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sdl.relations import Relation, pair_counts, relation_matrix, sd_weights_from_counts

#: (A, B) pairs of relation_auc, keyed "A>B": R2>R5 vs R2>R4 says whether extra or missing labels
#: move a sample away more; R4>R5 compares them directly; "positive" is R2..R5 together.
RELATION_AUC_PAIRS = (
    ("R2", "R5"),
    ("R2", "R4"),
    ("R4", "R5"),
    ("R4", "R3"),
    ("R5", "R3"),
    ("R2", "R3"),
    ("positive", "R1"),
)
SPACES = ("encoder", "head")
PROBE_SOLVERS = ("joint", "sklearn")


def seeded_subset(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of at most ``cap`` of ``n`` items (all if None)."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that dot products are cosine similarities."""
    x = np.asarray(embeddings, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# --- anchor rows: what the relation metrics read off every (anchor, item) pair ----------------------
#: relation codes in the anchor rows: 0 marks the anchor's own pair, 1..5 are R1..R5
_CODES = 1 + max(int(r) for r in Relation)
#: anchors per block: the per-block arrays are (block, N, codes) floats, bounded whatever N is
_BLOCK = 128


def _used_columns(labels: np.ndarray) -> torch.Tensor:
    """The labels as a float tensor without the label columns no item carries: those add nothing to
    any |S n T|, |S| or |T|, and thousands of them would make every pair count a large product."""
    lab = np.asarray(labels)
    return torch.as_tensor(lab[:, lab.any(0)].astype(np.float32))


@dataclass(frozen=True)
class AnchorLabels:
    """The label side of the anchor-centred metrics of one split: it depends on the labels only,
    so every space evaluated on the split shares it (:func:`anchor_labels`)."""

    anchors: np.ndarray  # (A,) rows of the anchors: items with a label (a seeded subset)
    relation: np.ndarray  # (A, N) int8: the Relation of item j to anchor i; 0 on the self pair
    cell: np.ndarray  # (A, N) int32: index into ``cells``; -1 where no label is shared (and self)
    cells: np.ndarray  # (K, 3) int64: (shared, extra, missing) of each SD-surface cell, sorted
    cell_relation: np.ndarray  # (K,) int8: the Relation of each cell (the counts fix it)
    weight_ranks: dict  # name -> (A, N - 1) centred average ranks of w(i, j) over j != i

    @property
    def size(self) -> int:
        return self.relation.shape[1]

    def not_self(self, rows: slice) -> np.ndarray:
        """(b, N) bool: False on each anchor's own pair, for the anchors ``rows``."""
        mask = np.ones((len(self.anchors[rows]), self.size), dtype=bool)
        mask[np.arange(mask.shape[0]), self.anchors[rows]] = False
        return mask


def _check_labels(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be an (N, C) multi-hot matrix, got shape {lab.shape}")
    return lab


def anchor_labels(
    labels: np.ndarray, max_anchors: int | None = 1000, seed: int = 0
) -> AnchorLabels:
    """The anchors and every label-set fact the relation metrics need about (anchor, item) pairs.

    Args:
        labels: (N, C) multi-hot labels of the items.
        max_anchors, seed: as :func:`relation_similarities`.

    Returns:
        An :class:`AnchorLabels` to pass to the metrics of any space of these items.

    Raises:
        ValueError: if ``labels`` is not 2-D or holds a value other than 0 and 1.
    """
    lab = _check_labels(labels)
    n = len(lab)
    anchors = np.flatnonzero(lab.sum(1) > 0)
    anchors = anchors[seeded_subset(len(anchors), max_anchors, seed)]
    if len(anchors) == 0:
        empty = np.zeros((0, n), dtype=np.int8)
        ranks = {"sd": np.zeros((0, max(n - 1, 0))), "jaccard": np.zeros((0, max(n - 1, 0)))}
        cells = np.zeros((0, 3), dtype=np.int64)
        return AnchorLabels(anchors, empty, empty - 1, cells, np.zeros(0, np.int8), ranks)
    lab_t = _used_columns(lab)
    counts = pair_counts(lab_t[anchors], lab_t)
    relation = relation_matrix(lab_t[anchors], lab_t).numpy().astype(np.int8)
    not_self = np.ones(relation.shape, dtype=bool)
    not_self[np.arange(len(anchors)), anchors] = False
    relation[~not_self] = 0
    inter = counts.inter.numpy().astype(np.int64)
    extra = counts.extra.numpy().astype(np.int64)
    missing = counts.missing.numpy().astype(np.int64)
    overlap = (inter > 0) & not_self
    # One integer code per (shared, extra, missing) cell, so that every cell is one bincount slot.
    base = int(max(inter.max(), extra.max(), missing.max())) + 1
    code = (inter * base + extra) * base + missing
    cell_codes, first, cell_of = np.unique(code[overlap], return_index=True, return_inverse=True)
    cell = np.full(relation.shape, -1, dtype=np.int32)
    cell[overlap] = cell_of
    shared, rest = np.divmod(cell_codes, base * base)
    cells = np.stack([shared, *np.divmod(rest, base)], axis=1).reshape(-1, 3)
    weights = {
        "sd": sd_weights_from_counts(counts).numpy(),
        "jaccard": (counts.inter / counts.union.clamp_min(1)).numpy(),
    }
    ranks = {}
    if n >= 3:
        for name, w in weights.items():  # each row loses exactly its self pair
            ranks[name] = _centred_ranks(w[not_self].reshape(len(anchors), n - 1))
    return AnchorLabels(anchors, relation, cell, cells, relation[overlap][first], ranks)


@dataclass(frozen=True)
class AnchorRows:
    """Per anchor, everything the relation metrics take from one space (:func:`anchor_rows`)."""

    count: np.ndarray  # (A, codes): items of each relation code in the anchor's row
    cosine_sum: np.ndarray  # (A, codes): their summed cosine to the anchor
    # (A, codes, codes): [i, a, b] = sum over the row's items j of code a of the number of items of
    # code b with a lower cosine to i, plus half those with an equal cosine: Mann-Whitney's U
    wins: np.ndarray
    cell_pairs: np.ndarray  # (A, K): items of each SD-surface cell in the row
    cell_cosine: np.ndarray  # (A, K): their summed cosine
    cell_wins: np.ndarray  # (A, K): their summed wins over the row's R1 items
    spearman: dict  # name -> (A,) rho of cosine against that weight over j != i; NaN if constant


def _check_embeddings(embeddings: np.ndarray, n: int) -> np.ndarray:
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or len(emb) != n:
        raise ValueError(
            f"embeddings (N, D) and labels (N, C) must agree, got {emb.shape} and N={n}"
        )
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")
    return emb


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    from scipy import stats  # imported here: scipy/sklearn take seconds to import

    return stats.rankdata(values, axis=1) - (values.shape[1] + 1) / 2


def anchor_rows(embeddings: np.ndarray, pairs: AnchorLabels) -> AnchorRows:
    """One space's per-anchor statistics, from one sort of each anchor's cosines.

    Every relation AUC is a Mann-Whitney U of the anchor's row. Sorting the row once, each item's
    count of lower and of equal cosines per relation code is a cumulative count read at the start
    and end of its run of equal values; summing those over the items of each code gives U for
    every pair of codes at once, ties counted 1/2.

    Args:
        embeddings: (N, D) embeddings of the items ``pairs`` was built from.
        pairs: :func:`anchor_labels` of their labels.

    Raises:
        ValueError: if the embeddings do not match the items or are not finite.
    """
    emb = _check_embeddings(embeddings, pairs.size)
    unit = unit_rows(emb)
    n_anchors, n = pairs.relation.shape
    n_cells = len(pairs.cells)
    codes = np.arange(_CODES, dtype=np.int8)
    out = {
        "count": np.zeros((n_anchors, _CODES), dtype=np.int64),
        "cosine_sum": np.zeros((n_anchors, _CODES)),
        "wins": np.zeros((n_anchors, _CODES, _CODES)),
        "cell_pairs": np.zeros((n_anchors, n_cells), dtype=np.int64),
        "cell_cosine": np.zeros((n_anchors, n_cells)),
        "cell_wins": np.zeros((n_anchors, n_cells)),
    }
    spearman = {name: np.full(n_anchors, np.nan) for name in pairs.weight_ranks}
    positions = np.arange(n)
    for start in range(0, n_anchors, _BLOCK):
        rows = slice(start, min(start + _BLOCK, n_anchors))
        sims = unit[pairs.anchors[rows]] @ unit.T  # (b, N): cosine of each anchor to every item
        b = sims.shape[0]
        order = np.argsort(sims, axis=1, kind="stable")
        values = np.take_along_axis(sims, order, axis=1)
        onehot = np.take_along_axis(pairs.relation[rows], order, axis=1)[..., None] == codes
        # cum[:, k, c]: items of code c among the k lowest cosines of the row
        cum = np.zeros((b, n + 1, _CODES), dtype=np.int32)
        np.cumsum(onehot, axis=1, out=cum[:, 1:])
        new_run = np.ones((b, n), dtype=bool)
        new_run[:, 1:] = values[:, 1:] != values[:, :-1]
        run_start = np.maximum.accumulate(np.where(new_run, positions, 0), axis=1)
        run_end = np.ones((b, n), dtype=bool)  # the last position of each run of equal values
        run_end[:, :-1] = new_run[:, 1:]
        run_stop = np.minimum.accumulate(np.where(run_end, positions + 1, n)[:, ::-1], axis=1)
        below = np.take_along_axis(cum, run_start[..., None], axis=1)
        tied = np.take_along_axis(cum, run_stop[:, ::-1, None], axis=1) - below
        wins = below + 0.5 * tied  # (b, N, codes), sorted order
        as_float = onehot.astype(np.float64)
        out["wins"][rows] = as_float.transpose(0, 2, 1) @ wins
        out["count"][rows] = onehot.sum(1)
        out["cosine_sum"][rows] = (as_float * values[..., None].astype(np.float64)).sum(1)
        # SD surface: per (anchor, cell) slot, its pairs, cosines and wins over the R1 items.
        wins_r1 = np.empty((b, n))
        np.put_along_axis(wins_r1, order, wins[..., int(Relation.DISJOINT)], axis=1)
        cell = pairs.cell[rows]
        has = cell >= 0
        slot = np.nonzero(has)[0] * n_cells + cell[has]
        size = b * n_cells
        for key, weights in (
            ("cell_pairs", None),
            ("cell_cosine", sims[has]),
            ("cell_wins", wins_r1[has]),
        ):
            out[key][rows] = np.bincount(slot, weights=weights, minlength=size).reshape(b, -1)
        if spearman:
            # Each row loses exactly its self pair. Rounded: float32 cosines carry ~1e-7 of
            # rounding, so cosines equal to 6 decimals are ties (as equal weights are), not an order.
            cos = np.round(sims[pairs.not_self(rows)].reshape(b, n - 1), 6)
            rx = _centred_ranks(cos)
            rx_norm = (rx**2).sum(1)
            for name, ranks in pairs.weight_ranks.items():
                ry = ranks[rows]
                denominator = np.sqrt(rx_norm * (ry**2).sum(1))
                with np.errstate(invalid="ignore", divide="ignore"):
                    spearman[name][rows] = np.where(
                        denominator > 0, (rx * ry).sum(1) / denominator, np.nan
                    )
    return AnchorRows(spearman=spearman, **out)


def _rows_of(embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None, seed: int):
    lab = _check_labels(labels)
    _check_embeddings(embeddings, len(lab))
    pairs = anchor_labels(lab, max_anchors, seed)
    return pairs, anchor_rows(embeddings, pairs)


def relation_similarities(
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_anchors: int | None = 1000,
    seed: int = 0,
) -> dict[Relation, np.ndarray]:
    """Cosine similarities of (anchor, sample) pairs, grouped by the sample's relation to the anchor.

    Args:
        embeddings: (N, D) embeddings; cosine similarity is taken after L2 normalisation.
        labels: (N, C) multi-hot labels.
        max_anchors: use at most this many anchors (a seeded random subset) against all N samples,
            so that the cost stays bounded on large sets; None uses every item.
        seed: seed for the anchor subset.

    Returns:
        A dict from each Relation to a 1-D float array of similarities (empty where no pair has it).
        Self pairs are left out; anchors with no labels are left out (they have only R1 pairs).

    Raises:
        ValueError: if the shapes disagree or the embeddings are not finite.
    """
    lab = _check_labels(labels)
    emb = _check_embeddings(embeddings, len(lab))
    pairs = anchor_labels(lab, max_anchors, seed)
    unit = unit_rows(emb)
    sims = unit[pairs.anchors] @ unit.T  # (A, N)
    return {r: sims[pairs.relation == int(r)] for r in Relation}


def _profile(rows: AnchorRows) -> dict[str, float | None]:
    count, total = rows.count.sum(0), rows.cosine_sum.sum(0)
    return {r.short: (float(total[r] / count[r]) if count[r] else None) for r in Relation}


def relation_profile(
    embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None = 1000, seed: int = 0
) -> dict[str, float | None]:
    """Mean cosine similarity per relation over pooled pairs, keyed "R1".."R5" (None if no pair).

    A pooled statistic, not an anchor-centred one: when the anchors are all the items (N <=
    ``max_anchors``), every R4 pair (i, j) is the R5 pair (j, i) and cosine is symmetric, so R4 and R5
    get the same mean whatever the space. Use :func:`relation_auc` to tell them apart.
    """
    return _profile(_rows_of(embeddings, labels, max_anchors, seed)[1])


def _codes(name: str) -> list[int]:
    """Relation codes of a relation_auc group name: "R1".."R5", or "positive" (R2..R5)."""
    if name == "positive":
        return [int(r) for r in Relation if r != Relation.DISJOINT]
    return [int(name[1:])]


def _check_auc_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    known = {r.short for r in Relation} | {"positive"}
    for a, b in pairs:
        if a not in known or b not in known:
            raise ValueError(f"pairs must name relations from {sorted(known)}, got {(a, b)!r}")


def _auc(
    rows: AnchorRows, pairs: Sequence[tuple[str, str]]
) -> tuple[dict[str, float | None], dict[str, int]]:
    means: dict[str, float | None] = {}
    anchors: dict[str, int] = {}
    for a, b in pairs:
        in_a, in_b = _codes(a), _codes(b)
        u = rows.wins[:, in_a][:, :, in_b].sum((1, 2))
        n_a, n_b = rows.count[:, in_a].sum(1), rows.count[:, in_b].sum(1)
        valid = (n_a > 0) & (n_b > 0)
        auc = u[valid] / (n_a[valid] * n_b[valid])
        means[f"{a}>{b}"] = float(auc.mean()) if valid.any() else None
        anchors[f"{a}>{b}"] = int(valid.sum())
    return means, anchors


def relation_auc(
    embeddings: np.ndarray,
    labels: np.ndarray,
    pairs: Sequence[tuple[str, str]] = RELATION_AUC_PAIRS,
    max_anchors: int | None = 1000,
    seed: int = 0,
) -> tuple[dict[str, float | None], dict[str, int]]:
    """Anchor-centred relation AUCs: for each pair (A, B), the mean over anchors of
    AUC_i(A > B) = P(cos(i, a) > cos(i, b)) over i's own samples a in A and b in B (ties 1/2).

    Args:
        embeddings, labels, max_anchors, seed: as :func:`relation_similarities`.
        pairs: (A, B) relation names, "R1".."R5" or "positive" (R2..R5).

    Returns:
        ({"A>B": mean AUC or None}, {"A>B": number of anchors that have both A and B samples}).

    Raises:
        ValueError: for an unknown relation name, or as :func:`relation_similarities`.
    """
    _check_auc_pairs(pairs)
    return _auc(_rows_of(embeddings, labels, max_anchors, seed)[1], pairs)


def _surface(rows: AnchorRows, pairs: AnchorLabels, min_anchors: int) -> list[dict]:
    cells = []
    n_r1 = rows.count[:, int(Relation.DISJOINT)]
    for c, (shared, extra, missing) in enumerate(pairs.cells.tolist()):
        has = rows.cell_pairs[:, c] > 0
        if has.sum() < min_anchors:
            continue
        row_mean = rows.cell_cosine[has, c] / rows.cell_pairs[has, c]
        with_r1 = has & (n_r1 > 0)
        auc = rows.cell_wins[with_r1, c] / (rows.cell_pairs[with_r1, c] * n_r1[with_r1])
        cells.append(
            {
                "shared": shared,
                "extra": extra,
                "missing": missing,
                "relation": Relation(int(pairs.cell_relation[c])).short,
                "anchors": int(has.sum()),
                "pairs": int(rows.cell_pairs[:, c].sum()),
                "cosine": float(row_mean.mean()),
                "auc_vs_R1": float(auc.mean()) if len(auc) else None,
            }
        )
    return cells


def sd_surface(
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_anchors: int | None = 1000,
    seed: int = 0,
    min_anchors: int = 1,
) -> list[dict]:
    """Mean cosine to the anchor by (shared, extra, missing) label counts: the "SD surface".

    For each cell (|S n T| > 0, |T \\ S|, |S \\ T|) and each anchor with samples in it, the anchor's
    mean cosine to those samples and its AUC of them against its disjoint (R1) samples; both are
    then averaged over the anchors.

    Args:
        embeddings, labels, max_anchors, seed: as :func:`relation_similarities`.
        min_anchors: leave out cells with fewer anchors.

    Returns:
        One dict per cell, sorted by (shared, extra, missing): ``shared``, ``extra``, ``missing``,
        ``relation`` ("R2".."R5"), ``anchors``, ``pairs``, ``cosine`` and ``auc_vs_R1`` (None when
        no anchor of the cell has an R1 sample).
    """
    pairs, rows = _rows_of(embeddings, labels, max_anchors, seed)
    return _surface(rows, pairs, min_anchors)


def _agreement(rows: AnchorRows) -> dict[str, float | None]:
    if not rows.spearman or len(rows.count) == 0:
        return {"sd": None, "jaccard": None, "anchors": 0}
    out: dict[str, float | None] = {}
    valid_rows = 0
    for name, rho in rows.spearman.items():
        ok = np.isfinite(rho)
        out[name] = float(rho[ok].mean()) if ok.any() else None
        valid_rows = max(valid_rows, int(ok.sum()))
    out["anchors"] = valid_rows
    return out


def sd_agreement(
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_anchors: int | None = 1000,
    seed: int = 0,
) -> dict[str, float | None]:
    """Per anchor, Spearman's rho between cos(i, j) and a label-set weight w(i, j) over j != i,
    averaged over anchors (those whose weights are not all equal).

    Returns:
        {"sd": rho against the SD weight (default K^s K^d), "jaccard": rho against
        |S n T| / |S u T|, "anchors": number of anchors averaged}.
    """
    return _agreement(_rows_of(embeddings, labels, max_anchors, seed)[1])


# --- probe and retrieval ----------------------------------------------------------------------------
def _check_pair(embeddings: np.ndarray, labels: np.ndarray, what: str) -> tuple:
    emb = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels).astype(np.uint8)
    if emb.ndim != 2 or lab.ndim != 2 or len(emb) != len(lab):
        raise ValueError(
            f"{what}: embeddings (N, D) and labels (N, C) must agree, got {emb.shape} and {lab.shape}"
        )
    if not np.isfinite(emb).all():
        raise ValueError(f"{what}: embeddings contain NaN or inf")
    return emb, lab


class LogisticFit(NamedTuple):
    """What :func:`fit_logistic` returns."""

    weight: np.ndarray  # (D, C) float64
    bias: np.ndarray  # (C,) float64
    iterations: int  # L-BFGS iterations taken
    converged: bool  # False: stopped by max_iter (or a failed line search) before the tolerance


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 1000, gtol: float = 1e-4
) -> LogisticFit:
    """Every label's logistic regression at once: minimises, over W (D, C) and b (C,),
    (1/N) [sum_{i,c} logloss(x_i W_c + b_c, y_ic) + (l2 / 2) ||W||^2] with L-BFGS (float64).

    The objective is a sum of one independent problem per label, each the one scikit-learn's
    ``LogisticRegression(C=1 / l2)`` solves (intercept not penalised), so one fit over the stacked
    parameters gives the same solutions as C separate fits, at the cost of one matrix product per
    step instead of C. Labels constant in ``y`` should be left out by the caller.

    L-BFGS runs on a change of variables that leaves the minimiser where it is: the weights are
    written in the basis of the centred features' singular vectors (the penalty ||W||^2 does not
    change under a rotation) and each coordinate is divided by the square root of its curvature at
    the start, pi_c (1 - pi_c) s_k^2 / N + l2 / N for label c of base rate pi_c and singular value
    s_k (pi_c (1 - pi_c) for the intercept). In those variables every label's problem is about
    equally well conditioned, so the joint fit no longer advances at the pace of its worst label
    (standardised features with near-constant directions and rare labels made hundreds of steps).

    Args:
        x: (N, D) features (standardised by the caller).
        y: (N, C) 0/1 targets.
        l2: strength of the L2 penalty on W (scikit-learn's 1 / C), > 0.
        max_iter: L-BFGS iterations at most.
        gtol: stop when the largest gradient entry of the 1/N-scaled objective, in the rescaled
            variables (where it is about the square root of twice the loss still to gain), is below
            this.

    Returns:
        A :class:`LogisticFit`: W, b, the iterations and whether the tolerance was reached.

    Raises:
        ValueError: if l2 <= 0, max_iter < 1 or the shapes disagree.
    """
    from scipy.optimize import minimize

    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    x = np.asarray(x, dtype=np.float64)
    targets = np.asarray(y, np.float32)
    if x.ndim != 2 or targets.ndim != 2 or len(x) != len(targets):
        raise ValueError(f"x (N, D) and y (N, C) must agree, got {x.shape} and {targets.shape}")
    n = len(x)
    mean = x.mean(0)
    _, sing, basis = np.linalg.svd(x - mean, full_matrices=False)  # basis: (r, D), orthonormal rows
    keep = sing > 1e-9 * (sing.max() if len(sing) else 0.0)  # constant directions: weight 0
    sing, basis = sing[keep], basis[keep]
    r = len(sing)
    # float32 products (half the memory traffic of float64); sums and L-BFGS itself in float64.
    f1 = np.hstack([((x - mean) @ basis.T).astype(np.float32), np.ones((n, 1), np.float32)])
    prior = targets.mean(0, dtype=np.float64).clip(1e-6, 1 - 1e-6)
    spread = prior * (1 - prior)  # (C,): the logloss's curvature at the base rate
    curvature = np.vstack([spread * sing[:, None] ** 2 / n + l2 / n, spread])  # (r + 1, C)
    scale = 1 / np.sqrt(curvature)
    penalised = np.ones((r + 1, 1))
    penalised[-1] = 0.0  # the intercept is not penalised

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta.reshape(r + 1, -1) * scale  # (r + 1, C): weights in the singular basis, bias
        logits = f1 @ z.astype(np.float32)  # (N, C)
        # softplus(l) = max(l, 0) + log1p(exp(-|l|)) and sigmoid(l) from the one exponential
        e = np.exp(-np.abs(logits))
        loss = float((np.maximum(logits, 0) + np.log1p(e)).sum(dtype=np.float64))
        loss -= float((targets * logits).sum(dtype=np.float64))
        loss += 0.5 * l2 * float((penalised * z**2).sum())
        residual = np.where(logits >= 0, 1.0, e) / (1.0 + e) - targets
        grad = ((f1.T @ residual).astype(np.float64) + l2 * penalised * z) * scale
        return loss / n, grad.ravel() / n

    start = np.zeros((r + 1, targets.shape[1]))
    start[-1] = np.log(prior / (1 - prior)) / scale[-1]  # start at each label's base rate
    result = minimize(
        objective,
        start.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter), "gtol": float(gtol)},
    )
    z = result.x.reshape(r + 1, -1) * scale
    weight = basis.T @ z[:-1]  # (D, C)
    return LogisticFit(weight, z[-1] - mean @ weight, int(result.nit), bool(result.success))


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(0)
    std = x_train.std(0)
    # A constant feature (up to rounding: the std of 0.01s is 1e-18, not 0) is only centred, as in
    # StandardScaler; dividing by its rounding noise would blow the test values up.
    constant = std <= 1e-10 * np.maximum(1.0, np.abs(mean))
    std = np.where(constant, 1.0, std)
    return (x_train - mean) / std, (x_test - mean) / std


def _probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, solver: str
) -> tuple[np.ndarray, int, bool]:
    """(scores (N_test, C), iterations, converged) of :func:`probe_scores`."""
    from scipy import stats  # imported here: scipy/sklearn take seconds to import

    if solver not in PROBE_SOLVERS:
        raise ValueError(f"solver must be one of {PROBE_SOLVERS}, got {solver!r}")
    x_train, x_test = _standardise(x_train, x_test)
    scores = np.zeros((len(x_test), y_train.shape[1]), dtype=np.float64)
    varying = y_train.min(0) != y_train.max(0)
    scores[:, ~varying] = y_train[0, ~varying].astype(np.float64)
    if not varying.any():
        return scores, 0, True
    if solver == "joint":
        fit = fit_logistic(x_train, y_train[:, varying])
        scores[:, varying] = stats.logistic.cdf(x_test @ fit.weight + fit.bias)
        return scores, fit.iterations, fit.converged
    from sklearn.linear_model import LogisticRegression

    iterations = 0
    for c in np.flatnonzero(varying):
        probe = LogisticRegression(max_iter=1000).fit(x_train, y_train[:, c])
        scores[:, c] = probe.predict_proba(x_test)[:, 1]
        iterations = max(iterations, int(probe.n_iter_.max()))
    return scores, iterations, iterations < 1000


def probe_scores(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, solver: str = "joint"
) -> np.ndarray:
    """(N_test, C) P(label | item) from a logistic regression per label on standardised features.

    Args:
        solver: "joint" (all labels in one L-BFGS fit, :func:`fit_logistic`) or "sklearn" (one
            ``LogisticRegression()`` per label; the slower reference).

    A label constant in the training split is predicted as that constant.

    Raises:
        ValueError: for an unknown solver.
    """
    return _probe(x_train, y_train, x_test, solver)[0]


def linear_probe(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    threshold: float = 0.5,
    solver: str = "joint",
    min_positives: int = 1,
) -> dict[str, float]:
    """Multi-label logistic regression (L2, C = 1) on standardised frozen features, scored on test.

    Only the labels with at least ``min_positives`` positives in the training split and in the test
    split are fitted and scored: with none in the test split a label's average precision is
    undefined, and with none in the training split no probe can learn it (it would only add its
    chance level). Thousands of long-tailed labels thus cost only those that can be measured.

    Args:
        train_emb, train_labels: (N, D) features and (N, C) labels the probe is fitted on.
        test_emb, test_labels: the held-out items it is scored on.
        threshold: probability at or above which a label is predicted (for F1).
        solver: see :func:`probe_scores`.
        min_positives: positives a label needs in each split to be evaluated, >= 1.

    Returns:
        ``mAP`` (average precision, macro over the evaluated labels), ``micro_f1`` and ``macro_f1``
        (over the same labels), ``probe_labels`` (how many labels were evaluated),
        ``probe_iterations`` (L-BFGS iterations; the largest over labels for "sklearn") and
        ``probe_converged`` (1 if the fit reached its tolerance, 0 if it stopped at its bound).

    Raises:
        ValueError: shapes disagree, NaN/inf, min_positives < 1, or no label has enough positives
            in both splits.
    """
    from sklearn import metrics  # imported here: scipy/sklearn take seconds to import

    x_train, y_train = _check_pair(train_emb, train_labels, "train")
    x_test, y_test = _check_pair(test_emb, test_labels, "test")
    if y_train.shape[1] != y_test.shape[1] or x_train.shape[1] != x_test.shape[1]:
        raise ValueError("train and test must have the same embedding size and number of labels")
    if isinstance(min_positives, bool) or not int(min_positives) >= 1:
        raise ValueError(f"min_positives must be an integer >= 1, got {min_positives!r}")
    evaluated = (y_train.sum(0) >= min_positives) & (y_test.sum(0) >= min_positives)
    if not evaluated.any():
        raise ValueError(
            f"no label has at least min_positives={min_positives} positives in both the training "
            "and the test split"
        )
    y_train, y_test = y_train[:, evaluated], y_test[:, evaluated]
    scores, iterations, converged = _probe(x_train, y_train, x_test, solver)
    predicted = (scores >= threshold).astype(np.uint8)
    return {
        "mAP": float(metrics.average_precision_score(y_test, scores, average="macro")),
        "micro_f1": float(metrics.f1_score(y_test, predicted, average="micro", zero_division=0)),
        "macro_f1": float(metrics.f1_score(y_test, predicted, average="macro", zero_division=0)),
        "probe_labels": int(evaluated.sum()),
        "probe_iterations": iterations,
        "probe_converged": int(converged),
    }


def cosine_neighbours(
    index: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of ``index`` with the highest cosine to each query, best first (ties: lower row).

    Args:
        index: (N, D) items searched.
        queries: (Q, D) query vectors.
        k: neighbours per query, 1 <= k <= N (minus one with ``exclude``).
        exclude: (Q,) row of ``index`` to leave out for each query (the query itself), or None.

    Returns:
        (rows (Q, k) int64, cosines (Q, k) float32).

    Raises:
        ValueError: if k is out of range.
    """
    limit = len(index) - (exclude is not None)
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}] (items that can be neighbours), got {k}")
    sims = unit_rows(queries) @ unit_rows(index).T  # (Q, N)
    if exclude is not None:
        sims[np.arange(len(sims)), np.asarray(exclude)] = -np.inf
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else None
    if part is None:
        part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    # Order the k candidates by (-cosine, row) so that ties break the same way on every machine.
    cand = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -cand), axis=1)
    rows = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return rows, np.take_along_axis(cand, order, axis=1)


def knn_retrieval(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """Retrieve the k nearest training items (cosine) for each query that has a label.

    Returns:
        ``knn_jaccard@k``, the mean Jaccard index |S n T| / |S u T| between the query's label set S
        and each neighbour's T, and ``precision@k``, the share of neighbours sharing a label with
        the query; both averaged over neighbours, then over queries.

    Raises:
        ValueError: shapes disagree, NaN/inf, k out of range, or no query has a label.
    """
    x_train, y_train = _check_pair(train_emb, train_labels, "train")
    x_query, y_query = _check_pair(query_emb, query_labels, "query")
    if not 1 <= k <= len(x_train):
        raise ValueError(f"k must be in [1, {len(x_train)}] (training items), got {k}")
    keep = y_query.sum(1) > 0
    if not keep.any():
        raise ValueError("no query has a label")
    x_query, y_query = x_query[keep], y_query[keep]
    neighbours, _ = cosine_neighbours(x_train, x_query, k)  # (Q, k) training rows
    # Only the queries' own labels can be shared: no (Q, k, C) array for thousands of labels.
    used = y_query.any(0)
    y_train_used, y_query_used = y_train[:, used], y_query[:, used]
    inter = np.stack(  # (Q, k): |S n T|
        [(y_train_used[neighbours[:, j]] & y_query_used).sum(1, dtype=np.int64) for j in range(k)],
        axis=1,
    )
    sizes = y_train.sum(1, dtype=np.int64)[neighbours] + y_query.sum(1, dtype=np.int64)[:, None]
    union = sizes - inter  # (Q, k): |S u T| >= |S| > 0
    return {
        f"knn_jaccard@{k}": float((inter / union).mean()),
        f"precision@{k}": float((inter > 0).mean()),
    }


def eval_threads() -> int:
    """BLAS threads of the evaluation: a quarter of the cores, 1 to 4. Its products are small, so
    extra threads mostly wait on each other, and far worse when other work holds the cores: with
    2 threads on a busy 2-core machine the probe took ten times as long as with one (seen: minutes
    with 16 threads on a 16-core GPU host)."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def _eval_threads():
    return threadpool_limits(limits=eval_threads())


def evaluate_embeddings(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    k: int = 10,
    max_anchors: int | None = 1000,
    pairs: AnchorLabels | None = None,
    timings: dict[str, float] | None = None,
) -> dict:
    """Every held-out metric of one space: probe, retrieval and the relation metrics.

    The relation metrics share one sort of each anchor's cosines (:func:`anchor_rows`).

    Args:
        train_emb, train_labels, test_emb, test_labels: as :func:`linear_probe`.
        k: neighbours for the retrieval metrics.
        max_anchors: as :func:`relation_similarities` (the seed is 0).
        pairs: :func:`anchor_labels` of ``test_labels``, to share between spaces; None computes it.
        timings: if given, the seconds of each stage are added to it under "probe", "knn",
            "anchor labels" (only when ``pairs`` is None), "anchor rows" and "relation summaries".

    Returns:
        ``mAP``, ``micro_f1``, ``macro_f1``, ``probe_labels``, ``probe_iterations``,
        ``probe_converged``, ``knn_jaccard@k``, ``precision@k``, ``relation_profile``,
        ``relation_auc``, ``relation_auc_anchors``, ``sd_agreement`` and ``sd_surface`` (see the
        module docstring).

    Raises:
        ValueError: as :func:`linear_probe`, :func:`knn_retrieval` and :func:`anchor_rows`.
    """
    clock = {} if timings is None else timings
    last = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        clock[stage] = clock.get(stage, 0.0) + now - last[0]
        last[0] = now

    with _eval_threads():
        metrics: dict = linear_probe(train_emb, train_labels, test_emb, test_labels)
        lap("probe")
        metrics.update(knn_retrieval(train_emb, train_labels, test_emb, test_labels, k))
        lap("knn")
        if pairs is None:
            pairs = anchor_labels(test_labels, max_anchors)
            lap("anchor labels")
        rows = anchor_rows(test_emb, pairs)
        lap("anchor rows")
        metrics["relation_profile"] = _profile(rows)
        auc, anchors = _auc(rows, RELATION_AUC_PAIRS)
        metrics["relation_auc"] = auc
        metrics["relation_auc_anchors"] = anchors
        metrics["sd_agreement"] = _agreement(rows)
        metrics["sd_surface"] = _surface(rows, pairs, 1)
        lap("relation summaries")
    return metrics


#: the top-level keys of metrics.json from before both spaces were measured: the encoder's values
LEGACY_METRICS = (
    "mAP",
    "micro_f1",
    "macro_f1",
    "knn_jaccard@10",
    "precision@10",
    "relation_profile",
)


def metrics_record(
    spaces: dict[str, tuple[np.ndarray, np.ndarray]],
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    timings: dict | None = None,
) -> dict:
    """metrics.json's content: :func:`evaluate_embeddings` of each space, keyed by space name
    ("encoder", "head"), and the encoder's scalar metrics also at the top level.

    Args:
        spaces: per space, its (train embeddings, test embeddings).
        train_labels: (N_train, C) labels of the training items embedded.
        test_labels: (N_test, C) held-out labels.
        timings: if given, filled with each space's stage seconds (see :func:`evaluate_embeddings`)
            and "anchor labels", the label side every space shares.
    """
    clock = {} if timings is None else timings
    start = time.perf_counter()
    with _eval_threads():
        pairs = anchor_labels(test_labels)  # the same for every space: the labels only
    clock["anchor labels"] = time.perf_counter() - start
    metrics: dict = {}
    for name, (train_emb, test_emb) in spaces.items():
        clock[name] = {}
        metrics[name] = evaluate_embeddings(
            train_emb, train_labels, test_emb, test_labels, pairs=pairs, timings=clock[name]
        )
    if "encoder" in metrics:
        metrics.update({k: metrics["encoder"][k] for k in LEGACY_METRICS})
    return metrics


@torch.no_grad()
def embed(
    encode: Callable[[torch.Tensor], torch.Tensor],
    inputs: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> np.ndarray:
    """Apply ``encode`` (e.g. ``model.encode`` in eval mode) to ``inputs`` in batches; float32 (N, D)."""
    parts = []
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(inputs[start : start + batch_size]).to(device, torch.float32)
        parts.append(encode(batch).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32)


# --- over seeds ----------------------------------------------------------------------------------------
def _t_interval(values: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) of a Student t interval; std and bounds NaN below 2 values."""
    from scipy import stats  # imported here: scipy/sklearn take seconds to import

    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def seed_summary(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, sample std and a t interval of one metric over seeds.

    Args:
        values: one value per seed (NaN and None are left out).
        level: coverage of the interval.

    Returns:
        {"n", "mean", "std", "ci_low", "ci_high"}; std and the bounds are NaN with fewer than 2.

    Raises:
        ValueError: if level is not in (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    mean, std, low, high = _t_interval(x, level)
    return {"n": len(x), "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def paired_difference(
    ours: Sequence[float], theirs: Sequence[float], level: float = 0.95
) -> dict[str, float | str]:
    """The per-seed difference ``ours - theirs`` (paired by position): mean, t interval, verdict.

    Returns:
        {"n", "mean", "std", "ci_low", "ci_high", "verdict"}: verdict "win" when the interval is
        above 0, "loss" when below, "tie" when it holds 0 (or with fewer than 2 pairs).

    Raises:
        ValueError: if the two sequences differ in length, or level is not in (0, 1).
    """
    if len(ours) != len(theirs):
        raise ValueError(f"paired values need equal lengths, got {len(ours)} and {len(theirs)}")
    diff = [
        a - b
        for a, b in zip(ours, theirs, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    summary: dict[str, float | str] = dict(seed_summary(diff, level))
    low, high = summary["ci_low"], summary["ci_high"]
    verdict = "tie"
    if math.isfinite(low) and low > 0:
        verdict = "win"
    elif math.isfinite(high) and high < 0:
        verdict = "loss"
    summary["verdict"] = verdict
    return summary
