"""Evaluation of a learned space on frozen embeddings, and summaries over seeds.

One space's metrics (:func:`evaluate_embeddings`, see docs/method.md, "Measuring what the weights
do to a space"), all on the held-out split:

- ``mAP``, ``micro_f1``, ``macro_f1``: a linear probe (multi-label logistic regression on
  standardised features, :func:`linear_probe`);
- ``knn_jaccard@10``, ``precision@10``: retrieval from the training embeddings;
- ``relation_profile``: mean cosine per relation R1..R5 over pooled pairs (R4 = R5 by symmetry);
- ``relation_auc`` / ``relation_auc_anchors``: anchor-centred AUCs, e.g. ``"R2>R5"``;
- ``sd_agreement``: per-anchor Spearman rho between cosine and the SD weight / Jaccard;
- ``sd_surface``: mean cosine (and AUC against R1) by (shared, extra, missing) label counts.

Seed summaries (:func:`seed_summary`, :func:`paired_difference`) are the one place where runs over
seeds become a mean, a spread, a 95% interval and a verdict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

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


# --- anchor rows: cosine, relation and label counts of each anchor to every item --------------------
def _anchor_rows(
    embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """(anchors (A,), cosine (A, N), not_self (A, N) bool, PairCounts (A, N)) for anchors with labels."""
    emb = np.asarray(embeddings, dtype=np.float32)
    lab = np.asarray(labels)
    if emb.ndim != 2 or lab.ndim != 2 or len(emb) != len(lab):
        raise ValueError(
            f"embeddings (N, D) and labels (N, C) must agree, got {emb.shape} and {lab.shape}"
        )
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")
    anchors = np.flatnonzero(lab.sum(1) > 0)
    anchors = anchors[seeded_subset(len(anchors), max_anchors, seed)]
    unit = unit_rows(emb)
    sims = unit[anchors] @ unit.T  # (A, N): cosine of each chosen anchor to every item
    not_self = np.ones(sims.shape, dtype=bool)
    not_self[np.arange(len(anchors)), anchors] = False
    lab_t = torch.as_tensor(lab.astype(np.float32))
    counts = pair_counts(lab_t[anchors], lab_t)
    return anchors, sims, not_self, counts


def _relations(labels: np.ndarray, anchors: np.ndarray, not_self: np.ndarray) -> np.ndarray:
    """(A, N) relation codes of every item to each anchor; self pairs become 0 (no relation)."""
    lab_t = torch.as_tensor(np.asarray(labels).astype(np.float32))
    rel = relation_matrix(lab_t[anchors], lab_t).numpy()
    rel[~not_self] = 0
    return rel


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
    anchors, sims, not_self, _ = _anchor_rows(embeddings, labels, max_anchors, seed)
    rel = _relations(labels, anchors, not_self)
    return {r: sims[rel == int(r)] for r in Relation}


def relation_profile(
    embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None = 1000, seed: int = 0
) -> dict[str, float | None]:
    """Mean cosine similarity per relation over pooled pairs, keyed "R1".."R5" (None if no pair).

    A pooled statistic, not an anchor-centred one: when the anchors are all the items (N <=
    ``max_anchors``), every R4 pair (i, j) is the R5 pair (j, i) and cosine is symmetric, so R4 and R5
    get the same mean whatever the space. Use :func:`relation_auc` to tell them apart.
    """
    groups = relation_similarities(embeddings, labels, max_anchors, seed)
    return {r.short: (float(v.mean()) if len(v) else None) for r, v in groups.items()}


def _wins_below(values: np.ndarray, is_b: np.ndarray) -> np.ndarray:
    """(R, N): for every entry, the number of B entries of its row below it plus half the ties."""
    rows = np.arange(values.shape[0])[:, None] * np.ones(values.shape, dtype=np.int64)
    # Shift each row into its own interval (|value| <= 1 < 2) so one sorted array serves all rows.
    shifted = values.astype(np.float64) + 4.0 * rows
    b_sorted = np.sort(shifted[is_b])
    left = np.searchsorted(b_sorted, shifted, "left")
    right = np.searchsorted(b_sorted, shifted, "right")
    row_start = np.searchsorted(b_sorted, 4.0 * rows - 2.0, "left")
    return (left - row_start) + 0.5 * (right - left)


def _row_auc(
    values: np.ndarray, is_a: np.ndarray, is_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, P(value of an A entry > value of a B entry), ties 1/2 (Mann-Whitney U / (|A||B|)).

    Args:
        values: (R, N) float values in [-1, 1] (cosines).
        is_a, is_b: (R, N) bool masks of the two groups in each row.

    Returns:
        (auc (R,) float64, NaN where a row lacks A or B; valid (R,) bool).
    """
    u = np.where(is_a, _wins_below(values, is_b), 0.0).sum(1)
    n_a = is_a.sum(1)
    n_b = is_b.sum(1)
    valid = (n_a > 0) & (n_b > 0)
    auc = np.full(values.shape[0], np.nan)
    auc[valid] = u[valid] / (n_a[valid] * n_b[valid])
    return auc, valid


def _relation_mask(rel: np.ndarray, name: str) -> np.ndarray:
    if name == "positive":
        return rel >= int(Relation.IDENTICAL)
    return rel == int(name[1:])


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
    known = {r.short for r in Relation} | {"positive"}
    for a, b in pairs:
        if a not in known or b not in known:
            raise ValueError(f"pairs must name relations from {sorted(known)}, got {(a, b)!r}")
    anchors, sims, not_self, _ = _anchor_rows(embeddings, labels, max_anchors, seed)
    rel = _relations(labels, anchors, not_self)
    means: dict[str, float | None] = {}
    anchors: dict[str, int] = {}
    wins: dict[str, np.ndarray] = {}  # per B relation, computed once for every A against it
    n_rows = sims.shape[0]
    for a, b in pairs:
        is_a, is_b = _relation_mask(rel, a), _relation_mask(rel, b)
        if b not in wins:
            wins[b] = _wins_below(sims, is_b)
        n_a, n_b = is_a.sum(1), is_b.sum(1)
        valid = (n_a > 0) & (n_b > 0)
        auc = np.full(n_rows, np.nan)
        auc[valid] = np.where(is_a, wins[b], 0.0).sum(1)[valid] / (n_a * n_b)[valid]
        means[f"{a}>{b}"] = float(auc[valid].mean()) if valid.any() else None
        anchors[f"{a}>{b}"] = int(valid.sum())
    return means, anchors


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
    anchors, sims, not_self, counts = _anchor_rows(embeddings, labels, max_anchors, seed)
    rel = _relations(labels, anchors, not_self)
    inter = counts.inter.numpy().astype(np.int64)
    extra = counts.extra.numpy().astype(np.int64)
    missing = counts.missing.numpy().astype(np.int64)
    overlap = (inter > 0) & not_self
    disjoint = (inter == 0) & not_self
    n_rows = sims.shape[0]
    # One integer code per cell, so that every (anchor, cell) group is one bincount slot.
    base = int(max(inter.max(), extra.max(), missing.max())) + 1
    code = (inter * base + extra) * base + missing
    cell_codes, cell_of = np.unique(code[overlap], return_inverse=True)
    rows = np.nonzero(overlap)[0]
    slot = rows * len(cell_codes) + cell_of  # (pairs,): which (anchor, cell) each pair is in
    size = n_rows * len(cell_codes)
    n_pairs = np.bincount(slot, minlength=size).reshape(n_rows, -1)  # (A, cells)
    cos_sum = np.bincount(slot, weights=sims[overlap], minlength=size).reshape(n_rows, -1)
    # AUC against R1 per (anchor, cell): each pair's wins over its row's R1 samples, summed.
    wins = _wins_below(sims, disjoint)[overlap]
    win_sum = np.bincount(slot, weights=wins, minlength=size).reshape(n_rows, -1)
    n_r1 = disjoint.sum(1)[:, None]  # (A, 1)
    pair_rel = rel[overlap]
    cells = []
    for c, cell in enumerate(cell_codes):
        has = n_pairs[:, c] > 0
        if has.sum() < min_anchors:
            continue
        row_mean = cos_sum[has, c] / n_pairs[has, c]
        with_r1 = has & (n_r1[:, 0] > 0)
        auc = win_sum[with_r1, c] / (n_pairs[with_r1, c] * n_r1[with_r1, 0])
        shared, rest = divmod(int(cell), base * base)
        n_extra, n_missing = divmod(rest, base)
        relation = Relation(int(pair_rel[np.argmax(cell_of == c)]))  # one relation per cell
        cells.append(
            {
                "shared": shared,
                "extra": n_extra,
                "missing": n_missing,
                "relation": relation.short,
                "anchors": int(has.sum()),
                "pairs": int(n_pairs[:, c].sum()),
                "cosine": float(row_mean.mean()),
                "auc_vs_R1": float(auc.mean()) if len(auc) else None,
            }
        )
    return cells


def _row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of x against the same row of y, (R, M) -> (R,); NaN if constant."""
    from scipy import stats  # imported here: scipy/sklearn take seconds to import

    rx = stats.rankdata(x, axis=1) - (x.shape[1] + 1) / 2
    ry = stats.rankdata(y, axis=1) - (y.shape[1] + 1) / 2
    denominator = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(1) / denominator, np.nan)


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
    anchors, sims, not_self, counts = _anchor_rows(embeddings, labels, max_anchors, seed)
    n = sims.shape[1]
    if n < 3 or len(anchors) == 0:
        return {"sd": None, "jaccard": None, "anchors": 0}
    weights = {
        "sd": sd_weights_from_counts(counts).numpy(),
        "jaccard": (counts.inter / counts.union.clamp_min(1)).numpy(),
    }
    # Each row loses exactly its self pair. Rounded: float32 cosines carry ~1e-7 of rounding, so
    # cosines equal to 6 decimals are ties (as equal weights are), not an order.
    cos = np.round(sims[not_self].reshape(len(anchors), n - 1), 6)
    out: dict[str, float | None] = {}
    valid_rows = 0
    for name, w in weights.items():
        rho = _row_spearman(cos, w[not_self].reshape(len(anchors), n - 1))
        ok = np.isfinite(rho)
        out[name] = float(rho[ok].mean()) if ok.any() else None
        valid_rows = max(valid_rows, int(ok.sum()))
    out["anchors"] = valid_rows
    return out


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


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 1000, gtol: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Every label's logistic regression at once: minimises, over W (D, C) and b (C,),
    (1/N) [sum_{i,c} logloss(x_i W_c + b_c, y_ic) + (l2 / 2) ||W||^2] with L-BFGS (float64).

    The objective is a sum of one independent problem per label, each the one scikit-learn's
    ``LogisticRegression(C=1 / l2)`` solves (intercept not penalised), so one fit over the stacked
    parameters gives the same solutions as C separate fits, at the cost of one matrix product per
    step instead of C. Labels constant in ``y`` should be left out by the caller.

    Args:
        x: (N, D) features (standardised by the caller).
        y: (N, C) 0/1 targets.
        l2: strength of the L2 penalty on W (scikit-learn's 1 / C).
        max_iter: L-BFGS iterations at most.
        gtol: stop when the largest gradient entry of the 1/N-scaled objective is below this.

    Returns:
        (W (D, C), b (C,)) as float64 numpy arrays.
    """
    from scipy.optimize import minimize

    # float32 products (half the memory traffic of float64); sums and L-BFGS itself in float64.
    x1 = np.hstack([np.asarray(x, np.float32), np.ones((len(x), 1), np.float32)])  # (N, D+1)
    targets = np.asarray(y, np.float32)
    n, d1 = x1.shape
    penalised = np.ones((d1, 1))
    penalised[-1] = 0.0  # the intercept is not penalised

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta.reshape(d1, -1)  # (D+1, C)
        logits = x1 @ w.astype(np.float32)  # (N, C)
        loss = float((np.logaddexp(0.0, logits) - targets * logits).sum(dtype=np.float64))
        loss += 0.5 * l2 * float((penalised * w**2).sum())
        residual = 0.5 * (1.0 + np.tanh(0.5 * logits)) - targets  # sigmoid, without overflow
        grad = (x1.T @ residual).astype(np.float64) + l2 * penalised * w
        return loss / n, grad.ravel() / n

    prior = targets.mean(0, dtype=np.float64).clip(1e-6, 1 - 1e-6)
    start = np.zeros((d1, targets.shape[1]))
    start[-1] = np.log(prior / (1 - prior))  # start at each label's base rate
    result = minimize(
        objective,
        start.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter), "gtol": float(gtol)},
    )
    w = result.x.reshape(d1, -1)
    return w[:-1], w[-1]


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(0)
    std = x_train.std(0)
    # A constant feature (up to rounding: the std of 0.01s is 1e-18, not 0) is only centred, as in
    # StandardScaler; dividing by its rounding noise would blow the test values up.
    constant = std <= 1e-10 * np.maximum(1.0, np.abs(mean))
    std = np.where(constant, 1.0, std)
    return (x_train - mean) / std, (x_test - mean) / std


def probe_scores(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, solver: str = "joint"
) -> np.ndarray:
    """(N_test, C) P(label | item) from a logistic regression per label on standardised features.

    Args:
        solver: "joint" (all labels in one L-BFGS fit, :func:`fit_logistic`) or "sklearn" (one
            ``LogisticRegression()`` per label; the slower reference).

    A label constant in the training split is predicted as that constant.
    """
    from scipy import stats  # imported here: scipy/sklearn take seconds to import

    if solver not in PROBE_SOLVERS:
        raise ValueError(f"solver must be one of {PROBE_SOLVERS}, got {solver!r}")
    x_train, x_test = _standardise(x_train, x_test)
    scores = np.zeros((len(x_test), y_train.shape[1]), dtype=np.float64)
    varying = y_train.min(0) != y_train.max(0)
    scores[:, ~varying] = y_train[0, ~varying].astype(np.float64)
    if not varying.any():
        return scores
    if solver == "joint":
        weight, bias = fit_logistic(x_train, y_train[:, varying])
        scores[:, varying] = stats.logistic.cdf(x_test @ weight + bias)
    else:
        from sklearn.linear_model import LogisticRegression

        for c in np.flatnonzero(varying):
            probe = LogisticRegression(max_iter=1000).fit(x_train, y_train[:, c])
            scores[:, c] = probe.predict_proba(x_test)[:, 1]
    return scores


def linear_probe(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    threshold: float = 0.5,
    solver: str = "joint",
) -> dict[str, float]:
    """Multi-label logistic regression (L2, C = 1) on standardised frozen features, scored on test.

    Args:
        train_emb, train_labels: (N, D) features and (N, C) labels the probe is fitted on.
        test_emb, test_labels: the held-out items it is scored on.
        threshold: probability at or above which a label is predicted (for F1).
        solver: see :func:`probe_scores`.

    Returns:
        ``mAP`` (average precision, macro over the labels with a positive in the test split),
        ``micro_f1`` and ``macro_f1`` (the macro average is over the same labels as mAP, so a label
        absent from the test split neither helps nor hurts).

    Raises:
        ValueError: shapes disagree, NaN/inf, or no label has a positive in the test split.
    """
    from sklearn import metrics  # imported here: scipy/sklearn take seconds to import

    x_train, y_train = _check_pair(train_emb, train_labels, "train")
    x_test, y_test = _check_pair(test_emb, test_labels, "test")
    if y_train.shape[1] != y_test.shape[1] or x_train.shape[1] != x_test.shape[1]:
        raise ValueError("train and test must have the same embedding size and number of labels")
    present = y_test.sum(0) > 0
    if not present.any():
        raise ValueError("no label has a positive in the test split")
    scores = probe_scores(x_train, y_train, x_test, solver)
    predicted = (scores >= threshold).astype(np.uint8)
    return {
        "mAP": float(
            metrics.average_precision_score(y_test[:, present], scores[:, present], average="macro")
        ),
        "micro_f1": float(metrics.f1_score(y_test, predicted, average="micro", zero_division=0)),
        "macro_f1": float(
            metrics.f1_score(
                y_test[:, present], predicted[:, present], average="macro", zero_division=0
            )
        ),
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
    x_query, y_query = x_query[keep], y_query[keep].astype(np.int64)
    neighbours, _ = cosine_neighbours(x_train, x_query, k)  # (Q, k) training rows
    y_near = y_train[neighbours].astype(np.int64)  # (Q, k, C)
    inter = (y_near & y_query[:, None, :]).sum(2)  # (Q, k): |S n T|
    union = (y_near | y_query[:, None, :]).sum(2)  # (Q, k): |S u T| >= |S| > 0
    return {
        f"knn_jaccard@{k}": float((inter / union).mean()),
        f"precision@{k}": float((inter > 0).mean()),
    }


def evaluate_embeddings(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    k: int = 10,
    max_anchors: int | None = 1000,
) -> dict:
    """Every held-out metric of one space: probe, retrieval and the relation metrics.

    Returns:
        ``mAP``, ``micro_f1``, ``macro_f1``, ``knn_jaccard@k``, ``precision@k``,
        ``relation_profile``, ``relation_auc``, ``relation_auc_anchors``, ``sd_agreement``
        and ``sd_surface`` (see the module docstring).
    """
    # Small dense problems: many BLAS threads only contend (seen: minutes on a 16-core GPU host).
    with threadpool_limits(limits=min(4, os.cpu_count() or 1)):
        metrics: dict = linear_probe(train_emb, train_labels, test_emb, test_labels)
        metrics.update(knn_retrieval(train_emb, train_labels, test_emb, test_labels, k))
        metrics["relation_profile"] = relation_profile(test_emb, test_labels, max_anchors)
        auc, anchors = relation_auc(test_emb, test_labels, max_anchors=max_anchors)
        metrics["relation_auc"] = auc
        metrics["relation_auc_anchors"] = anchors
        metrics["sd_agreement"] = sd_agreement(test_emb, test_labels, max_anchors)
        metrics["sd_surface"] = sd_surface(test_emb, test_labels, max_anchors)
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
) -> dict:
    """metrics.json's content: :func:`evaluate_embeddings` of each space, keyed by space name
    ("encoder", "head"), and the encoder's scalar metrics also at the top level.

    Args:
        spaces: per space, its (train embeddings, test embeddings).
        train_labels: (N_train, C) labels of the training items embedded.
        test_labels: (N_test, C) held-out labels.
    """
    metrics: dict = {
        name: evaluate_embeddings(train_emb, train_labels, test_emb, test_labels)
        for name, (train_emb, test_emb) in spaces.items()
    }
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
