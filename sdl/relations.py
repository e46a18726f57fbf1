"""Label-set algebra for multi-label contrastive learning.

Everything pairwise is read off one label matrix product: ``inter = Y @ Y.T`` gives |S n T| for every
anchor/sample pair, and the row sums give |S| and |T|. Nothing of size B x B x C is ever built.

Conventions (see the README's "Method" section):
- ``[i, j]`` is always *anchor i, sample j*; S is the anchor's label set, T the sample's.
- A sample with no labels is DISJOINT to every other sample; on the diagonal every sample is IDENTICAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

SIMILARITY_FORMS = ("anchor", "jaccard")
DISSIMILARITY_FORMS = ("count", "ratio")
WEIGHT_COMPONENTS = ("both", "similarity", "dissimilarity")


class Relation(IntEnum):
    """The relation of a sample (label set T) to an anchor (label set S)."""

    DISJOINT = 1  # R1: S n T = {}                          (negative)
    IDENTICAL = 2  # R2: S = T                              (positive)
    PARTIAL = 3  # R3: overlap, neither contains the other (positive)
    SUBSET = 4  # R4: T strictly inside S (fewer labels)    (positive)
    SUPERSET = 5  # R5: T strictly contains S (extra labels) (positive)

    @property
    def short(self) -> str:
        return f"R{int(self)}"


RELATION_NAMES = {r: r.name.lower() for r in Relation}


def check_labels(labels: Tensor, name: str = "labels") -> Tensor:
    """Validate a (B, C) multi-hot matrix and return it as a float tensor for exact counting.

    Counts are sums of 0/1 products, exact in float32 up to 2**24 labels; float64 input stays float64.

    Raises:
        ValueError: if ``labels`` is not 2-D, is empty in C, or holds a value other than 0 and 1.
    """
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be a (B, C) multi-hot matrix, got shape {tuple(labels.shape)}"
        )
    if labels.shape[1] == 0:
        raise ValueError(f"{name} has no label columns (shape {tuple(labels.shape)})")
    dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    as_float = labels.to(dtype)
    if not bool(((as_float == 0) | (as_float == 1)).all()):
        bad = as_float[(as_float != 0) & (as_float != 1)]
        raise ValueError(
            f"{name} must hold only 0 and 1 (multi-hot), found e.g. {bad.flatten()[0].item()!r}"
        )
    return as_float


@dataclass(frozen=True)
class PairCounts:
    """Set sizes for every (anchor i, sample j) pair, each (B, B) by broadcasting."""

    inter: Tensor  # (B, B): |S n T|
    anchor_size: Tensor  # (B, 1): |S|
    sample_size: Tensor  # (1, B): |T|

    @property
    def extra(self) -> Tensor:
        """(B, B): |T \\ S|, labels the sample has beyond the anchor."""
        return self.sample_size - self.inter

    @property
    def missing(self) -> Tensor:
        """(B, B): |S \\ T|, anchor labels the sample lacks."""
        return self.anchor_size - self.inter

    @property
    def union(self) -> Tensor:
        """(B, B): |S u T|."""
        return self.anchor_size + self.sample_size - self.inter


def pair_counts(labels: Tensor, other: Tensor | None = None) -> PairCounts:
    """Pair counts between anchors ``labels`` (B, C) and samples ``other`` (B', C), default the same."""
    anchors = check_labels(labels)
    samples = anchors if other is None else check_labels(other, "other")
    if samples.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"other has {samples.shape[1]} label columns but labels has {anchors.shape[1]}"
        )
    return counts_of_checked(anchors, samples.to(anchors.dtype))


def counts_of_checked(anchors: Tensor, samples: Tensor | None = None) -> PairCounts:
    """:func:`pair_counts` for float labels that :func:`check_labels` already accepted (no re-check)."""
    samples = anchors if samples is None else samples
    inter = anchors @ samples.T  # (B, B'): |S n T| for every pair
    return PairCounts(
        inter=inter,
        anchor_size=anchors.sum(1, keepdim=True),
        sample_size=samples.sum(1, keepdim=True).T,
    )


def relation_matrix(labels: Tensor, other: Tensor | None = None) -> Tensor:
    """(B, B) int64 matrix: entry [i, j] is the :class:`Relation` of sample j to anchor i.

    With ``other`` (B', C) the result is (B, B') between anchors ``labels`` and samples ``other``
    and no diagonal is special.
    """
    counts = pair_counts(labels, other)
    no_extra = counts.extra == 0
    no_missing = counts.missing == 0
    rel = torch.full(
        counts.inter.shape, int(Relation.PARTIAL), dtype=torch.int64, device=counts.inter.device
    )
    rel[no_extra & ~no_missing] = int(Relation.SUBSET)
    rel[~no_extra & no_missing] = int(Relation.SUPERSET)
    rel[no_extra & no_missing] = int(Relation.IDENTICAL)
    # Empty sets overlap nothing, so two empty samples are DISJOINT too (they only serve as negatives).
    rel[counts.inter == 0] = int(Relation.DISJOINT)
    if other is None:
        rel.fill_diagonal_(int(Relation.IDENTICAL))
    return rel


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den, 0 where den == 0 (an empty set shares nothing)."""
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def similarity_factor_from_counts(counts: PairCounts, form: str = "anchor") -> Tensor:
    _check_choice(form, SIMILARITY_FORMS, "similarity")
    if form == "anchor":
        return _safe_divide(counts.inter, counts.anchor_size.expand_as(counts.inter))
    return _safe_divide(counts.inter, counts.union)


def dissimilarity_factor_from_counts(counts: PairCounts, form: str = "count") -> Tensor:
    _check_choice(form, DISSIMILARITY_FORMS, "dissimilarity")
    if form == "count":
        return 1.0 / (1.0 + counts.extra)
    return _safe_divide(counts.inter, counts.sample_size.expand_as(counts.inter))


def similarity_factor(labels: Tensor, form: str = "anchor") -> Tensor:
    """(B, B) K^s: ``anchor`` |S n T| / |S| (default) or ``jaccard`` |S n T| / |S u T|; 0 if |S| = 0."""
    return similarity_factor_from_counts(pair_counts(labels), form)


def dissimilarity_factor(labels: Tensor, form: str = "count") -> Tensor:
    """(B, B) K^d: ``count`` 1 / (1 + |T \\ S|) (default) or ``ratio`` |S n T| / |T|."""
    return dissimilarity_factor_from_counts(pair_counts(labels), form)


def sd_weights_from_counts(
    counts: PairCounts,
    similarity: str = "anchor",
    dissimilarity: str = "count",
    components: str = "both",
    symmetric: bool = False,
) -> Tensor:
    _check_choice(components, WEIGHT_COMPONENTS, "components")
    overlap = (counts.inter > 0).to(counts.inter.dtype)  # R1 pairs never pull, whatever the factors
    k_s = similarity_factor_from_counts(counts, similarity)
    k_d = dissimilarity_factor_from_counts(counts, dissimilarity)
    if components == "both":
        weights = k_s * k_d
    elif components == "similarity":
        weights = k_s
    else:
        weights = k_d * overlap
    if symmetric:
        # Geometric mean of both directions: still 1 only for R2 and 0 for R1, but R4 and R5 meet.
        weights = torch.sqrt(weights * weights.T)
    return weights


def sd_weights(
    labels: Tensor,
    similarity: str = "anchor",
    dissimilarity: str = "count",
    components: str = "both",
    symmetric: bool = False,
) -> Tensor:
    """(B, B) Similarity-Dissimilarity weights w = K^s * K^d, 0 for disjoint pairs.

    Args:
        labels: (B, C) multi-hot label matrix.
        similarity: K^s form, ``anchor`` (default) or ``jaccard``.
        dissimilarity: K^d form, ``count`` (default) or ``ratio``.
        components: ``both`` (default), or the ablations ``similarity`` (K^s only) and
            ``dissimilarity`` (K^d only, on overlapping pairs).
        symmetric: use sqrt(w(i,j) * w(j,i)) so that the weight no longer depends on which side anchors.

    Returns:
        (B, B) tensor in [0, 1]; the diagonal is 1 for every sample with labels.

    Raises:
        ValueError: if labels is not a (B, C) 0/1 matrix or an option is unknown.
    """
    return sd_weights_from_counts(
        pair_counts(labels), similarity, dissimilarity, components, symmetric
    )


def relation_counts(relations: Tensor, include_diagonal: bool = False) -> dict[Relation, int]:
    """How many (anchor, sample) pairs fall in each relation; the diagonal is left out by default."""
    rel = relations
    if not include_diagonal:
        off = ~torch.eye(rel.shape[0], dtype=torch.bool, device=rel.device)
        rel = rel[off]
    return {r: int((rel == int(r)).sum()) for r in Relation}
