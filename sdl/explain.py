"""What the dashboard explains about a batch, as plain functions of label and embedding arrays.

Relations in a batch, the SDL factors, every loss's pair weights on one comparable scale, the
weight per relation, each pair's loss term and logit gradient for an anchor, and the relation of a
set of items to one anchor. NumPy in, NumPy or pandas out: no Streamlit, no drawing.

Everything about one anchor is a row of a batch matrix, so each question comes in two parts: a
function of the whole batch (:func:`batch_relations`, :func:`comparable_weights`,
:func:`batch_loss_terms`), computed once, and a function that reads one anchor's row from it
(:func:`anchor_pairs_of`, :func:`weights_by_relation_of`, :func:`anchor_loss_terms_of`). A page
caches the first and calls the second on every anchor change; :func:`anchor_pairs`,
:func:`weights_by_relation` and :func:`anchor_loss_terms` do both in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sdl import relations
from sdl.losses import build_loss, compared_losses, loss_class
from sdl.relations import Relation

#: the largest batch and label vocabulary the pages explain (every matrix is B x B)
MAX_BATCH = 512
MAX_LABELS = 64

OptionsByLoss = Mapping[str, Mapping[str, object]]
#: "R1".."R5" by relation id (index 0 unused), to name a whole row of relation ids at once
_SHORT = np.array([""] + [r.short for r in Relation])


def _labels_tensor(labels: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels, dtype=np.float32))


@dataclass
class BatchRelations:
    """The relation of every sample to every anchor, and SDL's factors for one variant."""

    relation: np.ndarray  # (B, B) int: relation of sample j to anchor i (1..5)
    k_s: np.ndarray  # (B, B)
    k_d: np.ndarray  # (B, B)
    weight: np.ndarray  # (B, B): the SDL weight for the chosen variant
    counts: dict[Relation, int]  # pairs per relation, diagonal left out


def batch_relations(
    labels: np.ndarray, sdl_options: Mapping[str, object] | None = None
) -> BatchRelations:
    """Relations and SDL factors of a (B, C) multi-hot batch for the SDL variant ``sdl_options``."""
    options = dict(sdl_options or {})
    sim = str(options.get("similarity", "anchor"))
    dis = str(options.get("dissimilarity", "count"))
    y = _labels_tensor(labels)
    pair = relations.pair_counts(y)
    rel = relations.relation_matrix(y)
    weight = relations.sd_weights_from_counts(
        pair,
        sim,
        dis,
        str(options.get("components", "both")),
        bool(options.get("symmetric", False)),
    )
    return BatchRelations(
        relation=rel.numpy(),
        k_s=relations.similarity_factor_from_counts(pair, sim).numpy(),
        k_d=relations.dissimilarity_factor_from_counts(pair, dis).numpy(),
        weight=weight.numpy(),
        counts=_relation_counts(rel.numpy()),
    )


def _relation_counts(relation: np.ndarray) -> dict[Relation, int]:
    """Pairs per relation off the diagonal: one bincount (``relations.relation_counts`` compares
    the whole matrix with each relation in turn)."""
    off = relation[~np.eye(len(relation), dtype=bool)]
    counts = np.bincount(off, minlength=len(Relation) + 1)
    return {r: int(counts[int(r)]) for r in Relation}


def relations_to_anchor(anchor_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) relation ids 1..5 of each of ``labels`` (N, C) to one anchor label set (C,)."""
    anchor = _labels_tensor(np.asarray(anchor_labels)[None, :])
    return relations.relation_matrix(anchor, _labels_tensor(labels))[0].numpy()


def comparable_weights(
    labels: np.ndarray, loss: str, options: Mapping[str, object] | None = None
) -> np.ndarray:
    """(B, B) pair weights of a named loss, one view per sample, on a common scale (R2 = 1)."""
    module = build_loss(loss, **dict(options or {}))
    return module.comparable_weights(_labels_tensor(labels)).numpy()


def weights_by_relation(
    labels: np.ndarray,
    anchor: int | None = None,
    losses: Sequence[str] | None = None,
    options: OptionsByLoss | None = None,
) -> pd.DataFrame:
    """Mean comparable weight per (loss, relation) for one anchor's row or the whole batch.

    Args:
        labels: (B, C) multi-hot batch.
        anchor: the anchor's row, or None for every off-diagonal pair.
        losses: the losses to compare (default: every contrastive multi-label loss).
        options: options per loss name (e.g. the SDL variant under "sdl").

    Returns:
        Columns loss, relation ("R1".."R5"), name, weight (mean), pairs; relations without any
        pair are left out.
    """
    losses = list(losses or compared_losses())
    options = options or {}
    rel = relations.relation_matrix(_labels_tensor(labels)).numpy()
    weights = {loss: comparable_weights(labels, loss, options.get(loss)) for loss in losses}
    return weights_by_relation_of(rel, weights, anchor)


def weights_by_relation_of(
    relation: np.ndarray, weights: Mapping[str, np.ndarray], anchor: int | None = None
) -> pd.DataFrame:
    """:func:`weights_by_relation` from a batch's matrices: only the anchor's row is read.

    Args:
        relation: (B, B) relation ids, as :func:`batch_relations` gives them.
        weights: (B, B) comparable weights per loss name, as :func:`comparable_weights` gives them.
        anchor: the anchor's row, or None for every off-diagonal pair.

    Returns:
        The table :func:`weights_by_relation` returns.

    Raises:
        ValueError: for an anchor outside the batch.
    """
    size = len(relation)
    if anchor is None:
        keep = ~np.eye(size, dtype=bool)
        rel = relation[keep]  # (B * (B - 1),): every off-diagonal pair, row by row
        rows_of = {loss: w[keep] for loss, w in weights.items()}
    else:
        anchor = _check_anchor(anchor, size)
        others = np.arange(size) != anchor
        rel = relation[anchor, others]  # (B - 1,): the anchor's row without itself
        rows_of = {loss: w[anchor, others] for loss, w in weights.items()}
    picks = [(r, rel == int(r)) for r in Relation]
    rows = []
    for loss, values in rows_of.items():
        for r, pick in picks:
            count = int(pick.sum())
            if count:
                rows.append(
                    {
                        "loss": loss,
                        "relation": r.short,
                        "name": relations.RELATION_NAMES[r],
                        "weight": float(values[pick].mean()),
                        "pairs": count,
                    }
                )
    return pd.DataFrame(rows, columns=["loss", "relation", "name", "weight", "pairs"])


def _check_anchor(anchor: int, size: int) -> int:
    if isinstance(anchor, bool) or not isinstance(anchor, int | np.integer):
        raise ValueError(f"anchor must be an item number, got {anchor!r}")
    if not 0 <= anchor < size:
        raise ValueError(f"anchor must be between 0 and {size - 1}, got {anchor}")
    return int(anchor)


def anchor_pairs(
    labels: np.ndarray, anchor: int, sdl_options: Mapping[str, object] | None = None
) -> pd.DataFrame:
    """One row per sample j != anchor: relation, K^s, K^d and the SDL weight w of the variant.

    Rows are ordered the way the pull is: the heaviest weight first, disjoint (R1) samples last.
    """
    return anchor_pairs_of(batch_relations(labels, sdl_options), anchor)


def anchor_pairs_of(batch: BatchRelations, anchor: int) -> pd.DataFrame:
    """:func:`anchor_pairs` from a batch's :class:`BatchRelations`: only the anchor's row is read.

    Raises:
        ValueError: for an anchor outside the batch.
    """
    anchor = _check_anchor(anchor, len(batch.relation))
    others = np.flatnonzero(np.arange(len(batch.relation)) != anchor)
    table = pd.DataFrame(
        {
            "sample": others,
            "relation": _SHORT[batch.relation[anchor, others]],
            "K^s": batch.k_s[anchor, others],
            "K^d": batch.k_d[anchor, others],
            "w": batch.weight[anchor, others],
        }
    )
    return table.sort_values(["w", "relation", "sample"], ascending=[False, True, True])


@dataclass
class BatchLossTerms:
    """One loss on one batch of embeddings, every anchor at once (one view per sample)."""

    relation: np.ndarray  # (B, B) int: relation of sample j to anchor i
    cosine: np.ndarray  # (B, B): cosine similarity of sample j to anchor i
    weight: np.ndarray  # (B, B): the loss's pair weight w(i, j)
    term: np.ndarray  # (B, B): the pair's share of L_i
    gradient: np.ndarray  # (B, B): dL_i / d logit(i, j)
    per_anchor: np.ndarray  # (B,): L_i
    has_positives: np.ndarray  # (B,) bool
    loss: float
    anchors_without_positives: int


def batch_loss_terms(
    embeddings: np.ndarray,
    labels: np.ndarray,
    loss: str,
    temperature: float,
    options: Mapping[str, object] | None = None,
) -> BatchLossTerms:
    """Per-pair loss terms and logit gradients of every anchor in a batch of embeddings.

    Args:
        embeddings: (B, D) one embedding per sample.
        labels: (B, C) multi-hot batch.
        loss: a contrastive loss name.
        temperature: the softmax temperature.
        options: the loss's options.

    Returns:
        The (B, B) matrices and per-anchor results, see :class:`BatchLossTerms`.

    Raises:
        ValueError: for a loss that is not contrastive (it has no pairs to explain).
    """
    if not loss_class(loss).contrastive:
        raise ValueError(f"loss {loss!r} is not contrastive: it has no pair terms")
    loss_fn = build_loss(loss, temperature=temperature, **dict(options or {}))
    features = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    y = _labels_tensor(labels)
    with torch.no_grad():
        out = loss_fn.forward_detailed(features, y, keep_log_prob=True)
        unit = torch.nn.functional.normalize(features, dim=1)
        return BatchLossTerms(
            relation=relations.relation_matrix(y).numpy(),
            cosine=(unit @ unit.T).numpy(),
            weight=out.weights.numpy(),
            term=out.pair_terms().numpy(),
            gradient=out.logit_gradient().numpy(),
            per_anchor=out.per_anchor.numpy(),
            has_positives=out.has_positives.numpy(),
            loss=float(out.loss),
            anchors_without_positives=out.anchors_without_positives,
        )


def anchor_loss_terms(
    embeddings: np.ndarray,
    labels: np.ndarray,
    anchor: int,
    loss: str,
    temperature: float,
    options: Mapping[str, object] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Per-pair loss terms and logit gradients of one anchor in a batch of embeddings.

    Returns a table (sample, relation, cosine, weight, term, gradient) for every j != anchor, and a
    summary dict (anchor_loss, loss, anchor_has_positives, anchors_without_positives).

    Raises:
        ValueError: for a loss that is not contrastive (it has no pairs to explain).
    """
    terms = batch_loss_terms(embeddings, labels, loss, temperature, options)
    return anchor_loss_terms_of(terms, anchor)


def anchor_loss_terms_of(terms: BatchLossTerms, anchor: int) -> tuple[pd.DataFrame, dict]:
    """:func:`anchor_loss_terms` from a batch's :class:`BatchLossTerms`: the anchor's row only.

    Raises:
        ValueError: for an anchor outside the batch.
    """
    anchor = _check_anchor(anchor, len(terms.relation))
    others = np.flatnonzero(np.arange(len(terms.relation)) != anchor)
    table = pd.DataFrame(
        {
            "sample": others,
            "relation": _SHORT[terms.relation[anchor, others]],
            "cosine": terms.cosine[anchor, others],
            "weight": terms.weight[anchor, others],
            "term": terms.term[anchor, others],
            "gradient": terms.gradient[anchor, others],
        }
    )
    summary = {
        "anchor_loss": float(terms.per_anchor[anchor]),
        "loss": terms.loss,
        "anchor_has_positives": bool(terms.has_positives[anchor]),
        "anchors_without_positives": terms.anchors_without_positives,
    }
    return table, summary


def most_varied_anchor(relation: np.ndarray) -> int:
    """The anchor whose row shows the most relations (R2 and R5 count double), so charts have content."""
    best, best_score = 0, -1.0
    for i in range(len(relation)):
        present = {int(v) for v in np.unique(np.delete(relation[i], i))}
        score = len(present) + 2 * (2 in present) + 2 * (5 in present)
        if score > best_score:
            best, best_score = i, score
    return best


def random_label_sets(batch: int, num_labels: int, mean_labels: float, seed: int = 0) -> np.ndarray:
    """(batch, num_labels) uint8 random label sets with about ``mean_labels`` labels each.

    Label popularity falls off like 1/rank (a few labels are common, as in real multi-label data),
    so identical, subset and superset pairs appear in a small batch, not only partial and disjoint.
    Every set has at least one label.

    Raises:
        ValueError: naming the argument that is out of range.
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
    # Weighted sampling without replacement for every row at once (Efraimidis-Spirakis, as
    # Gumbel top-k): a row's labels are its ``size`` largest log-popularity + Gumbel keys, which
    # draws them with the same law as picking one at a time in proportion to popularity. One
    # rng.choice per row cost about 0.3 ms: 56-91 ms of a 256-item batch's Relations rerun.
    keys = np.log(popularity) + rng.gumbel(size=(batch, num_labels))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)  # 0 for the largest key of the row
    return (rank < sizes[:, None]).astype(np.uint8)
