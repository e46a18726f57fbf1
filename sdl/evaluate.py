"""Evaluation of a learned space on frozen embeddings."""

from __future__ import annotations

import numpy as np
import torch

from sdl.relations import Relation, relation_matrix


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
    if max_anchors is not None and len(anchors) > max_anchors:
        anchors = np.sort(np.random.default_rng(seed).choice(anchors, max_anchors, replace=False))
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sims = unit[anchors] @ unit.T  # (A, N): cosine of each chosen anchor to every item
    lab_t = torch.as_tensor(lab.astype(np.float32))
    rel = relation_matrix(
        lab_t[anchors], lab_t
    ).numpy()  # (A, N): relation of each item to each anchor
    not_self = np.ones_like(sims, dtype=bool)
    not_self[np.arange(len(anchors)), anchors] = False
    return {r: sims[(rel == int(r)) & not_self] for r in Relation}


def relation_profile(
    embeddings: np.ndarray, labels: np.ndarray, max_anchors: int | None = 1000, seed: int = 0
) -> dict[str, float | None]:
    """Mean cosine similarity per relation, keyed "R1".."R5" (None where no pair has it)."""
    groups = relation_similarities(embeddings, labels, max_anchors, seed)
    return {r.short: (float(v.mean()) if len(v) else None) for r, v in groups.items()}
