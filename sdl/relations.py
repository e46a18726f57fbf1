"""Label-set algebra for multi-label contrastive learning.

Everything pairwise is read off one label matrix product: ``inter = Y @ Y.T`` gives |S n T| for every
anchor/sample pair, and the row sums give |S| and |T|. Nothing of size B x B x C is ever built.

Conventions (see the README's "Method" section):
- ``[i, j]`` is always *anchor i, sample j*; S is the anchor's label set, T the sample's.
- A sample with no labels is DISJOINT to every other sample; on the diagonal every sample is IDENTICAL.
"""

from __future__ import annotations

import warnings
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


# --- sparse label sets and blocks of pair counts ------------------------------------------------
@dataclass(frozen=True)
class SparseLabels:
    """B label sets in compressed-row form, for many labels (C in the thousands) and few per sample.

    Sample b carries the labels ``indices[indptr[b]:indptr[b + 1]]`` (sorted, without repeats).
    Build one with :meth:`from_lists`, :meth:`from_dense` or :func:`as_label_sets` (torch sparse).
    """

    indptr: Tensor  # (B + 1,) int64, indptr[0] = 0, non-decreasing
    indices: Tensor  # (nnz,) int64 label ids in [0, num_labels)
    num_labels: int

    @property
    def batch(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.batch, self.num_labels)

    def sizes(self) -> Tensor:
        """(B,) int64: |S| of every sample."""
        return self.indptr[1:] - self.indptr[:-1]

    def label_counts(self) -> Tensor:
        """(C,) int64: how many samples carry each label."""
        return torch.bincount(self.indices, minlength=self.num_labels)

    def to_dense(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """(B, C) multi-hot matrix."""
        dense = torch.zeros(self.shape, dtype=dtype, device=self.indices.device)
        rows = torch.repeat_interleave(torch.arange(self.batch, device=dense.device), self.sizes())
        dense[rows, self.indices] = 1
        return dense

    def to(self, device: torch.device | str) -> SparseLabels:
        return SparseLabels(self.indptr.to(device), self.indices.to(device), self.num_labels)

    @classmethod
    def from_lists(cls, label_lists, num_labels: int) -> SparseLabels:
        """From one sequence of label ids per sample; repeats within a sample count once.

        Raises:
            ValueError: if ``num_labels`` < 1 or an id is not an integer in [0, num_labels).
        """
        if int(num_labels) < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels}")
        rows = []
        for b, ids in enumerate(label_lists):
            ids = torch.as_tensor(list(ids), dtype=torch.float64).flatten()
            bad = (ids != ids.round()) | (ids < 0) | (ids >= num_labels)
            if bool(bad.any()):
                raise ValueError(
                    f"labels of sample {b} must be integer ids in [0, {num_labels}), "
                    f"found {ids[bad][0].item()!r}"
                )
            rows.append(torch.unique(ids.to(torch.int64)))  # sorted, repeats dropped
        sizes = torch.tensor([len(r) for r in rows], dtype=torch.int64)
        indptr = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
        indices = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.int64)
        return cls(indptr, indices, int(num_labels))

    @classmethod
    def from_dense(cls, labels: Tensor) -> SparseLabels:
        """From a (B, C) multi-hot matrix (checked with :func:`check_labels`)."""
        dense = check_labels(labels)
        rows, cols = dense.nonzero(as_tuple=True)  # row-major: sorted by row, then label
        sizes = torch.bincount(rows, minlength=dense.shape[0])
        indptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        return cls(indptr, cols, dense.shape[1])


def as_label_sets(labels, name: str = "labels") -> Tensor | SparseLabels:
    """Dense labels as :func:`check_labels` gives them; sparse ones (torch sparse COO/CSR or
    :class:`SparseLabels`) as a checked :class:`SparseLabels`, never densified.

    Raises:
        ValueError: if the labels are not (B, C), have no columns, or hold a value other than 0 and 1.
    """
    if isinstance(labels, SparseLabels):
        return labels
    if not (isinstance(labels, Tensor) and labels.layout in (torch.sparse_coo, torch.sparse_csr)):
        return check_labels(labels, name)
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be a (B, C) multi-hot matrix, got shape {tuple(labels.shape)}"
        )
    if labels.shape[1] == 0:
        raise ValueError(f"{name} has no label columns (shape {tuple(labels.shape)})")
    coo = labels.to_sparse_coo().coalesce()  # repeated entries are summed, so 2 is caught below
    rows, cols = coo.indices()
    values = coo.values()
    keep = values != 0  # stored zeros are no labels
    if bool((values[keep] != 1).any()):
        bad = values[keep][values[keep] != 1]
        raise ValueError(
            f"{name} must hold only 0 and 1 (multi-hot), found e.g. {bad.flatten()[0].item()!r}"
        )
    rows, cols = rows[keep], cols[keep]  # coalesced: sorted by row, then label
    sizes = torch.bincount(rows, minlength=labels.shape[0])
    indptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    return SparseLabels(indptr, cols, labels.shape[1])


def _csr(indptr: Tensor, indices: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with (
        warnings.catch_warnings()
    ):  # torch calls its CSR support beta; the product used here is exact
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(indptr, indices, values, size=shape)


# Dense counting costs one multiply-add per (anchor, sample, label); sparse counting one step per
# (anchor, sample, shared label) pair, but each step costs about this many multiply-adds (measured
# on CPU with torch.sparse.mm of two CSR matrices against a float matmul).
_SPARSE_STEP_COST = 1000


class BlockCounts:
    """|S n T| for blocks of anchor rows against every sample, without the (B, B) product.

    Dense labels with few columns count with a (b, C) @ (C, B) matmul; many sparse labels with a
    CSR (b, C) @ CSR (C, B) product, so no dense (B, C) float matrix is built. The choice is made
    once from the label statistics (see ``_SPARSE_STEP_COST``).

    Args:
        labels: (B, C) multi-hot matrix or :class:`SparseLabels`, as :func:`as_label_sets` returns.
        dtype: float dtype of the counts.
        device: where the counts are computed.
        label_weights: optional (C,) weight of each label: ``inter`` then sums the weights of the
            shared labels instead of counting them (MulSupCon's 1 / |P_c|).
        mode: ``auto`` (default), or force ``dense`` or ``sparse`` counting.

    Raises:
        ValueError: for an unknown ``mode``.
    """

    def __init__(
        self,
        labels: Tensor | SparseLabels,
        dtype: torch.dtype,
        device: torch.device | str,
        label_weights: Tensor | None = None,
        mode: str = "auto",
    ):
        _check_choice(mode, ("auto", "dense", "sparse"), "mode")
        self.dtype = dtype
        sparse = labels if isinstance(labels, SparseLabels) else None
        if sparse is not None:
            sparse = sparse.to(device)
            per_label = sparse.label_counts().to(torch.float64)
            self.batch, classes = sparse.shape
            self.sizes = sparse.sizes().to(dtype)
        else:
            labels = labels.to(device=device, dtype=dtype)
            per_label = labels.sum(0).to(torch.float64)
            self.batch, classes = labels.shape
            self.sizes = labels.sum(1)
        # Shared-label pairs over the whole batch, sum_c count_c^2, against B * B * C multiply-adds.
        use_sparse = float((per_label**2).sum()) * _SPARSE_STEP_COST < self.batch**2 * classes
        use_sparse = {"auto": use_sparse, "dense": False, "sparse": True}[mode]
        weights = None if label_weights is None else label_weights.to(device=device, dtype=dtype)
        self.mode = "sparse" if use_sparse else "dense"
        if not use_sparse:
            dense = sparse.to_dense(dtype) if sparse is not None else labels
            self._samples_t = dense.T  # (C, B)
            self._anchors = dense if weights is None else dense * weights  # (B, C)
            return
        if sparse is None:
            sparse = SparseLabels.from_dense(labels)
        self._indptr, self._indices = sparse.indptr, sparse.indices
        self._values = (
            torch.ones(len(sparse.indices), dtype=dtype, device=device)
            if weights is None
            else weights[sparse.indices]
        )
        # The samples side as CSR of Y^T (C, B): for each label, the samples that carry it.
        rows = torch.repeat_interleave(torch.arange(self.batch, device=device), sparse.sizes())
        order = torch.argsort(sparse.indices, stable=True)
        label_ptr = torch.cat([per_label.new_zeros(1), per_label.cumsum(0)]).to(torch.int64)
        self._samples_t = _csr(
            label_ptr.to(device),
            rows[order],
            torch.ones(len(order), dtype=dtype, device=device),
            (classes, self.batch),
        )
        self._classes = classes

    def inter(self, start: int, stop: int, row_scale: Tensor | None = None) -> Tensor:
        """(stop - start, B): |S n T| (or the summed label weights) of anchors start..stop-1.

        ``row_scale`` (stop - start,) multiplies each anchor's row, folded into the product.
        """
        if self.mode == "dense":
            anchors = self._anchors[start:stop]
            if row_scale is not None:
                anchors = anchors * row_scale[:, None]
            return anchors @ self._samples_t
        lo, hi = int(self._indptr[start]), int(self._indptr[stop])
        values = self._values[lo:hi]
        if row_scale is not None:
            values = values * torch.repeat_interleave(
                row_scale, self._indptr[start + 1 : stop + 1] - self._indptr[start:stop]
            )
        block = _csr(
            self._indptr[start : stop + 1] - lo,
            self._indices[lo:hi],
            values,
            (stop - start, self._classes),
        )
        return torch.sparse.mm(block, self._samples_t).to_dense()

    def counts(self, start: int, stop: int) -> PairCounts:
        """:class:`PairCounts` of anchors start..stop-1 against every sample, (b, B) by broadcasting."""
        return PairCounts(
            inter=self.inter(start, stop),
            anchor_size=self.sizes[start:stop, None],
            sample_size=self.sizes[None, :],
        )
