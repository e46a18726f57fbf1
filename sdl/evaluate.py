"""Evaluation of a learned space on frozen embeddings.

metrics.json holds ``mAP``, ``micro_f1``, ``macro_f1`` (a linear probe), ``knn_jaccard@10`` and
``precision@10`` (retrieval from the training embeddings) and ``relation_profile`` (mean cosine
similarity per relation R1..R5), all on the held-out split. The metrics come from scikit-learn.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sdl.relations import Relation, relation_matrix


def seeded_subset(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of at most ``cap`` of ``n`` items (all if None)."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that dot products are cosine similarities."""
    x = np.asarray(embeddings, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


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
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    lab = np.asarray(labels)
    if emb.ndim != 2 or lab.ndim != 2 or len(emb) != len(lab):
        raise ValueError(
            f"embeddings (N, D) and labels (N, C) must agree, got {emb.shape} and {lab.shape}"
        )
    anchors = np.flatnonzero(lab.sum(1) > 0)
    anchors = anchors[seeded_subset(len(anchors), max_anchors, seed)]
    unit = unit_rows(emb)
    sims = unit[anchors] @ unit.T  # (A, N): cosine of each chosen anchor to every item
    lab_t = torch.as_tensor(lab.astype(np.float32))
    rel = relation_matrix(lab_t[anchors], lab_t).numpy()  # (A, N): relation to each anchor
    not_self = np.ones_like(sims, dtype=bool)
    not_self[np.arange(len(anchors)), anchors] = False
    return {r: sims[(rel == int(r)) & not_self] for r in Relation}


def relation_profile(
    embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None = 1000, seed: int = 0
) -> dict[str, float | None]:
    """Mean cosine similarity per relation, keyed "R1".."R5" (None where no pair has it)."""
    groups = relation_similarities(embeddings, labels, max_anchors, seed)
    return {r.short: (float(v.mean()) if len(v) else None) for r, v in groups.items()}


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


def linear_probe(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """One-vs-rest logistic regression on standardised frozen features, scored on the test split.

    Returns ``mAP`` (average precision, macro over the labels with a positive in the test split),
    ``micro_f1`` and ``macro_f1`` (predicted probability >= ``threshold``; the macro average is over
    the same labels as mAP, so a label absent from the test split neither helps nor hurts).
    A label constant in the training split is predicted as that constant.
    """
    x_train, y_train = _check_pair(train_emb, train_labels, "train")
    x_test, y_test = _check_pair(test_emb, test_labels, "test")
    if y_train.shape[1] != y_test.shape[1] or x_train.shape[1] != x_test.shape[1]:
        raise ValueError("train and test must have the same embedding size and number of labels")
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    scores = np.zeros(y_test.shape, dtype=np.float64)  # (N_test, C): P(label | item)
    for c in range(y_train.shape[1]):
        column = y_train[:, c]
        if column.min() == column.max():
            scores[:, c] = float(column[0])
            continue
        probe = LogisticRegression(max_iter=1000).fit(x_train, column)
        scores[:, c] = probe.predict_proba(x_test)[:, 1]
    present = y_test.sum(0) > 0
    if not present.any():
        raise ValueError("no label has a positive in the test split")
    predicted = (scores >= threshold).astype(np.uint8)
    return {
        "mAP": float(
            average_precision_score(y_test[:, present], scores[:, present], average="macro")
        ),
        "micro_f1": float(f1_score(y_test, predicted, average="micro", zero_division=0)),
        "macro_f1": float(
            f1_score(y_test[:, present], predicted[:, present], average="macro", zero_division=0)
        ),
    }


def knn_retrieval(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """Retrieve the k nearest training items (cosine) for each query that has a label.

    Returns ``knn_jaccard@k``, the mean Jaccard index |S n T| / |S u T| between the query's label
    set S and each neighbour's T, and ``precision@k``, the share of neighbours sharing a label with
    the query; both averaged over neighbours, then over queries.
    """
    x_train, y_train = _check_pair(train_emb, train_labels, "train")
    x_query, y_query = _check_pair(query_emb, query_labels, "query")
    if not 1 <= k <= len(x_train):
        raise ValueError(f"k must be in [1, {len(x_train)}] (training items), got {k}")
    keep = y_query.sum(1) > 0
    if not keep.any():
        raise ValueError("no query has a label")
    x_query, y_query = x_query[keep], y_query[keep].astype(np.int64)
    index = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(x_train)
    neighbours = index.kneighbors(x_query, return_distance=False)  # (Q, k) training rows
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
) -> dict:
    """Every held-out metric of metrics.json: probe, retrieval and the relation profile."""
    # Small dense problems: many BLAS threads only contend (seen: minutes on a 16-core GPU host).
    with threadpool_limits(limits=min(4, os.cpu_count() or 1)):
        metrics: dict = linear_probe(train_emb, train_labels, test_emb, test_labels)
        metrics.update(knn_retrieval(train_emb, train_labels, test_emb, test_labels, k))
        metrics["relation_profile"] = relation_profile(test_emb, test_labels)
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
