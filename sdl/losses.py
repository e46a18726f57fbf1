"""Multi-label supervised contrastive losses in one weighted-SupCon form.

Every loss here is the same computation, the weighted "L_out" SupCon of the README's Method section:

    L_i = -(1 / n_i) * sum_{p != i} w(i, p) * log softmax_{a != i}(z_i . z_a / tau)[p]
    L   = sum_i r_i * L_i / sum_i r_i     over anchors i with at least one positive (w > 0)

Only the pair weights w, the per-anchor normaliser n_i and the reduction weight r_i differ:
``sdl`` (Similarity-Dissimilarity), ``supcon``, ``simclr``, ``all``, ``any``, ``jaccard`` and
``mulsupcon``; ``bce`` is the non-contrastive reference. Build one with :func:`build_loss`.

The registry (:data:`LOSSES`, filled by :func:`register_loss`) is the one place that says what a
loss takes and how it is shown: each class carries its ``name``, ``label_kind``, ``min_views``,
``options`` (typed and bounded, :class:`sdl.options.Option`), ``color`` and ``summary``, and puts its
weights on a common scale in ``comparable_weights``. The trainer, the CLI and the dashboard ask the
registry; adding a loss is one class here (or anywhere, decorated with ``@register_loss``).

Features are (B, D) or (B, V, D) for V views of each sample; view k of the flattened (B*V, D)
matrix belongs to sample k // V. Features are L2-normalised here, in float32 (float64 stays float64).
Every loss runs through one blockwise core (:mod:`sdl.blockwise`): each class only gives the
weights of a block of anchor samples against every sample, computed from the labels, so the
memory is O(block x N + N x D) and never N x N. Multi-hot labels may be dense or sparse
(:class:`sdl.relations.SparseLabels`, a torch sparse tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdl import relations
from sdl.blockwise import BlockWeights, block_normaliser, blockwise_supcon
from sdl.options import Option, parse_options

NORMALISERS = ("count", "weight")
#: the bounds of the softmax temperature. Unit vectors give logits z_i . z_a / tau in [-1/tau, 1/tau].
#: Below tau = 1e-4 the float32 loss, a difference of terms of size 1/tau, keeps no digit below 1e-3
#: (and at 1e-38 the logits overflow); above tau = 1e4 all logits agree to 2e-4 and the softmax is
#: uniform to float32 precision, so the loss no longer sees the features.
TEMPERATURE_RANGE = (1e-4, 1e4)
TEMPERATURE = Option(
    "temperature",
    float,
    0.07,
    "softmax temperature tau",
    low=TEMPERATURE_RANGE[0],
    high=TEMPERATURE_RANGE[1],
)
NORMALIZE = Option(
    "normalize", str, "count", "n_i: number of positives, or sum of weights", choices=NORMALISERS
)
CHUNK_SIZE = Option(
    "chunk_size",
    int,
    None,
    "anchors per block (bounds memory); none: all",
    low=1,
    nullable=True,
    group="memory",
)


def validate_temperature(value: object) -> float:
    """The temperature as a float, checked against :data:`TEMPERATURE_RANGE` (its one home).

    Raises:
        ValueError: naming the value and the range.
    """
    return float(TEMPERATURE.parse(value))  # type: ignore[arg-type]


@dataclass
class LossOutput:
    """Everything a loss computed, for training (``loss``) and for looking inside (the dashboard).

    N = B * V views. Pair tensors are indexed [anchor view, sample view]. Only ``loss`` carries a
    gradient. ``weights`` is built on first access (an N x N matrix: for small batches only).
    """

    loss: Tensor  # scalar
    per_anchor: Tensor  # (N,): L_i, 0 where the anchor has no positives
    has_positives: Tensor  # (N,) bool
    reduction_weight: Tensor  # (N,): r_i, 0 where the anchor has no positives
    normaliser: Tensor  # (N,): n_i
    log_prob: Tensor | None  # (N, N): log softmax over a != i (diagonal 0); kept on request
    dense_weights: Callable[[], Tensor] = field(repr=False)  # builds the (N, N) weights

    @property
    def anchors_without_positives(self) -> int:
        return int((~self.has_positives).sum())

    @cached_property
    def weights(self) -> Tensor:
        """(N, N): w between views, diagonal 0."""
        return self.dense_weights()

    def pair_terms(self) -> Tensor:
        """(N, N): each pair's share of L_i, -w(i,p) log p(i,p) / n_i (needs keep_log_prob=True)."""
        log_prob = self._need_log_prob()
        return -self.weights * log_prob / self.normaliser.clamp_min(1e-12)[:, None]

    def logit_gradient(self) -> Tensor:
        """(N, N): dL_i / d logit(i, a) = (W_i softmax_i(a) - w(i, a)) / n_i, the pull (<0) or push (>0)."""
        log_prob = self._need_log_prob()
        eye = torch.eye(log_prob.shape[0], dtype=torch.bool, device=log_prob.device)
        softmax = log_prob.exp().masked_fill(eye, 0.0)
        total = self.weights.sum(1, keepdim=True)  # (N, 1): W_i
        grad = (total * softmax - self.weights) / self.normaliser.clamp_min(1e-12)[:, None]
        return grad * self.has_positives[:, None]

    def _need_log_prob(self) -> Tensor:
        if self.log_prob is None:
            raise ValueError("call the loss with keep_log_prob=True to get per-pair terms")
        return self.log_prob


def _compute_dtype(x: Tensor) -> torch.dtype:
    # The softmax runs in float32 even for float16/bfloat16 features; float64 stays exact.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def check_features(features: Tensor) -> Tensor:
    """Validate (B, D) or (B, V, D) features; return them as (B, V, D)."""
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise ValueError(f"features must be (B, D) or (B, V, D), got shape {tuple(features.shape)}")
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got dtype {features.dtype}")
    if features.shape[0] * features.shape[1] < 2:
        raise ValueError(
            f"features needs at least 2 views in all to contrast, got shape {tuple(features.shape)}"
        )
    if features.shape[2] == 0:
        raise ValueError(f"features has no dimensions (shape {tuple(features.shape)})")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contain NaN or inf")
    return features


def unit_features(features: Tensor) -> Tensor:
    """(B, V, D) checked features -> (B*V, D) unit rows in the compute dtype, for any finite norm.

    Each row is divided by its largest absolute entry before the L2 norm, so the norm lies in
    [1, sqrt(D)]: no overflow above ~1e19 and no clamp below ~1e-12. The divisor is held constant
    for autograd, which is exact: x / |x| does not depend on the scale of x, and its Jacobian at
    x / m, times 1 / m, is its Jacobian at x.

    Raises:
        ValueError: for an all-zero row. A zero vector has no direction, so its loss and gradient
            are undefined; the error names the first such row.
    """
    batch, views, dim = features.shape
    x = features.reshape(batch * views, dim).to(_compute_dtype(features))
    scale = x.detach().abs().amax(1, keepdim=True)  # (N, 1)
    zero = (scale == 0).flatten()
    if bool(zero.any()):
        k = int(zero.nonzero()[0])
        raise ValueError(
            f"features row {k} (sample {k // views}, view {k % views}) is all zeros: "
            "a zero vector has no direction to contrast"
        )
    return F.normalize(x / scale, dim=1)


def expand_views(sample_weights: Tensor, views: int) -> Tensor:
    """(B, B) weights between samples -> (N, N) weights between views, diagonal 0, a new tensor.

    View k belongs to sample k // V, so entry [k, l] is ``sample_weights[k // V, l // V]``.
    """
    batch = sample_weights.shape[0]
    n = batch * views
    # One copy through a broadcast view, instead of two repeat_interleave copies.
    weights = sample_weights[:, None, :, None].expand(batch, views, batch, views).reshape(n, n)
    if weights.data_ptr() == sample_weights.data_ptr():  # V = 1: reshape made no copy
        weights = weights.clone()
    return weights.fill_diagonal_(0.0)


def dense_log_prob(z: Tensor, temperature: float) -> Tensor:
    """(N, N) log softmax_{a != i}(z_i . z_a / tau), diagonal 0, for unit rows z (N, D)."""
    logits = z @ z.T / temperature  # (N, N)
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = torch.log_softmax(logits.masked_fill(eye, -torch.inf), dim=1)
    return log_prob.masked_fill(eye, 0.0)


SampleBlock = Callable[[int, int], Tensor]


class WeightedSupConLoss(nn.Module):
    """Base class: subclasses only say which pairs are positive and how much (``sample_block``).

    The loss runs through :func:`sdl.blockwise.blockwise_supcon`, blocks of anchors at a time, so
    no N x N matrix is built (``forward_detailed``'s ``weights`` and ``log_prob`` excepted, which
    are built on request).

    Args:
        temperature: softmax temperature tau, see :func:`validate_temperature` (default 0.07).
        normalize: n_i is ``count`` (number of positives, default) or ``weight`` (sum of weights).
        chunk_size: anchor views per block (rounded down to whole samples; None: blocks of about
            ``sdl.blockwise.BLOCK_ELEMENTS`` logits).
    """

    #: the registry name (``build_loss(name)``); set by every registered subclass
    name: ClassVar[str] = ""
    #: what ``labels`` must be: "multi" (B, C) multi-hot, "single" (B,) class ids, "none" (ignored)
    label_kind: ClassVar[str] = "multi"
    #: smallest number of views per sample the loss can work with
    min_views: ClassVar[int] = 1
    #: contrastive losses train a projection head; the bce reference trains a classifier
    contrastive: ClassVar[bool] = True
    #: the options the constructor takes besides ``temperature``
    options: ClassVar[tuple[Option, ...]] = (NORMALIZE, CHUNK_SIZE)
    #: one colour per loss, the same on every page
    color: ClassVar[str] = "#7f7f7f"
    #: one line: which pairs pull, and how hard
    summary: ClassVar[str] = ""
    #: the weights are only 0 or 1 (lets the core count positives by summing)
    binary_weights: ClassVar[bool] = False

    def __init__(
        self, temperature: float = 0.07, normalize: str = "count", chunk_size: int | None = None
    ):
        super().__init__()
        self.temperature = validate_temperature(temperature)
        self.normalize = str(NORMALIZE.parse(normalize))
        self.chunk_size = CHUNK_SIZE.parse(chunk_size)

    # --- what a subclass provides -------------------------------------------------------------
    def sample_block(
        self, labels, views: int, dtype: torch.dtype, device: torch.device
    ) -> SampleBlock:
        """For one batch: ``(start, stop) -> (stop - start, B)`` weights between samples.

        Row s holds anchor sample start + s against every sample; the diagonal entry is the
        weight between two views of one sample. Each call returns a new tensor.
        """
        raise NotImplementedError

    def block_weights(
        self, labels, batch: int, views: int, dtype: torch.dtype, device: torch.device
    ) -> BlockWeights:
        """What the blockwise core needs for this batch (see :class:`sdl.blockwise.BlockWeights`)."""
        block = self.sample_block(labels, views, dtype, device)
        return BlockWeights(batch, views, block, self.normalize, binary=self.binary_weights)

    # --- dense views, for small batches (the dashboard) -----------------------------------------
    def sample_weights(self, labels, dtype: torch.dtype) -> Tensor:
        """(B, B) weights between samples; the view-level matrix repeats them for every view pair."""
        labels = self._check_labels(labels, _label_rows(labels))
        device = labels.device if isinstance(labels, Tensor) else torch.device("cpu")
        return self.sample_block(labels, 1, dtype, device)(0, _label_rows(labels))

    def view_weights(
        self,
        labels,
        batch: int,
        views: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(N, N) pair weights, (N,) normaliser n_i and (N,) reduction weight r_i."""
        labels = self._check_labels(labels, batch)
        spec = self.block_weights(labels, batch, views, dtype, device)
        sample_w = spec.sample_block(0, batch).to(device=device, dtype=dtype)  # (B, B)
        normaliser, reduction, _ = block_normaliser(spec, sample_w, 0, batch)
        weights = expand_views(sample_w, views)  # (N, N)
        return weights, normaliser.repeat_interleave(views), reduction.repeat_interleave(views)

    # --- shared ---------------------------------------------------------------------------------
    def _check_labels(self, labels, batch: int):
        if self.label_kind == "none":
            return None
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels")
        if self.label_kind == "single":
            if not isinstance(labels, Tensor):
                labels = torch.as_tensor(labels)
            if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
                raise ValueError(
                    "labels must be a (B,) tensor of integer class ids, "
                    f"got shape {tuple(labels.shape)} dtype {labels.dtype}"
                )
        else:
            labels = relations.as_label_sets(labels)
        if labels.shape[0] != batch:
            raise ValueError(
                f"labels has {labels.shape[0]} rows but features has batch size {batch}"
            )
        return labels

    def forward_detailed(
        self, features: Tensor, labels=None, keep_log_prob: bool = False
    ) -> LossOutput:
        """The loss and what it is made of. See :class:`LossOutput`.

        Args:
            features: (B, D) or (B, V, D); no row may be all zeros.
            labels: (B, C) multi-hot (dense, torch sparse or :class:`sdl.relations.SparseLabels`),
                (B,) class ids for ``supcon``, None for ``simclr``.
            keep_log_prob: also build the dense (N, N) log-probabilities (small batches).

        Raises:
            ValueError: for bad features or labels.
        """
        features = check_features(features)
        batch, views, _ = features.shape
        if views < self.min_views:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_views} views per sample, "
                f"got features of shape {tuple(features.shape)}"
            )
        labels = self._check_labels(labels, batch)
        z = unit_features(features)  # (N, D)
        spec = self.block_weights(labels, batch, views, z.dtype, z.device)
        result = blockwise_supcon(z, spec, self.temperature, self.chunk_size)
        log_prob = dense_log_prob(z, self.temperature) if keep_log_prob else None

        def dense_weights() -> Tensor:
            return expand_views(spec.sample_block(0, batch).to(z.dtype), views)

        return LossOutput(
            loss=result.loss,
            per_anchor=result.per_anchor,
            has_positives=result.reduction > 0,
            reduction_weight=result.reduction,
            normaliser=result.normaliser,
            log_prob=log_prob,
            dense_weights=dense_weights,
        )

    def forward(self, features: Tensor, labels=None) -> Tensor:
        return self.forward_detailed(features, labels).loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize!r}"

    def comparable_weights(self, labels: Tensor) -> Tensor:
        """(B, B) pair weights with one view per sample on a common scale: 1 for an identical set.

        The diagonal (a sample and itself) is 0. Losses whose raw weights are not on that scale
        (MulSupCon) override this.
        """
        dtype = _weights_dtype(labels)
        labels = self._check_labels(labels, len(labels))
        weights, _, _ = self.view_weights(labels, len(labels), 1, dtype, torch.device("cpu"))
        return weights.fill_diagonal_(0.0)


def _weights_dtype(labels) -> torch.dtype:
    """float64 weights for float64 labels (exact references), float32 otherwise."""
    return torch.float64 if getattr(labels, "dtype", None) == torch.float64 else torch.float32


def _label_rows(labels) -> int:
    return int(labels.shape[0]) if labels is not None else 0


def _same_sample_block(batch: int, dtype: torch.dtype, device: torch.device) -> SampleBlock:
    def block(start: int, stop: int) -> Tensor:
        weights = torch.zeros(stop - start, batch, dtype=dtype, device=device)
        rows = torch.arange(stop - start, device=device)
        weights[rows, start + rows] = 1.0
        return weights

    return block


class SDLoss(WeightedSupConLoss):
    """Similarity-Dissimilarity loss: w = K^s * K^d (see :func:`sdl.relations.sd_weights`)."""

    name = "sdl"
    color = "#e4572e"
    summary = "w = K^s·K^d: R2 pulls fully, R4 by the share of labels kept, R5 at most 1/2"
    options = (
        Option("similarity", str, "anchor", "K^s: |S∩T|/|S| or |S∩T|/|S∪T|",
               choices=relations.SIMILARITY_FORMS, group="weights"),
        Option("dissimilarity", str, "count", "K^d: 1/(1+|T∖S|) or |S∩T|/|T|",
               choices=relations.DISSIMILARITY_FORMS, group="weights"),
        Option("components", str, "both", "the weight uses both factors, or one alone",
               choices=relations.WEIGHT_COMPONENTS, group="weights"),
        Option("symmetric", bool, False, "sqrt(w(i,j)·w(j,i)): subset and superset pairs meet",
               group="weights"),
        NORMALIZE,
        CHUNK_SIZE,
    )  # fmt: skip

    @staticmethod
    def weight_formula(options: Mapping[str, object] | None = None) -> str:
        """The weight this variant computes, in symbols: "w = K^s·K^d", "w = K^d", ..."""
        options = options or {}
        ks = "K^s" if options.get("similarity", "anchor") == "anchor" else "K^s_jaccard"
        kd = "K^d" if options.get("dissimilarity", "count") == "count" else "K^d_ratio"
        part = {"both": f"{ks}·{kd}", "similarity": ks, "dissimilarity": kd}[
            str(options.get("components", "both"))
        ]
        if options.get("symmetric"):
            return f"w = √({part}(i,j)·{part}(j,i))"
        return f"w = {part}"

    def __init__(
        self,
        temperature: float = 0.07,
        similarity: str = "anchor",
        dissimilarity: str = "count",
        components: str = "both",
        symmetric: bool = False,
        normalize: str = "count",
        chunk_size: int | None = None,
    ):
        super().__init__(temperature, normalize, chunk_size)
        # Check the options now, not at the first batch.
        relations._check_choice(similarity, relations.SIMILARITY_FORMS, "similarity")
        relations._check_choice(dissimilarity, relations.DISSIMILARITY_FORMS, "dissimilarity")
        relations._check_choice(components, relations.WEIGHT_COMPONENTS, "components")
        self.similarity = similarity
        self.dissimilarity = dissimilarity
        self.components = components
        self.symmetric = bool(symmetric)

    def sample_block(self, labels, views, dtype, device) -> SampleBlock:
        counts = relations.BlockCounts(labels, dtype, device)
        default = (self.similarity, self.dissimilarity, self.components) == (
            "anchor",
            "count",
            "both",
        )
        options = (self.similarity, self.dissimilarity, self.components)

        sizes_plus_one = counts.sizes[None, :] + 1.0  # (1, B): 1 + |T|
        inverse_sizes = 1.0 / counts.sizes.clamp_min(1.0)  # (B,): 1 / |S|, 1 for empty S

        def block(start: int, stop: int) -> Tensor:
            if default and not self.symmetric:
                # K^s K^d = k / (1 + |T| - |S| k) with k = |S n T| / |S| straight from the product;
                # two passes over the block; 0 wherever S n T is empty (empty S included).
                k_s = counts.inter(start, stop, row_scale=inverse_sizes[start:stop])  # (b, B)
                anchor_size = counts.sizes[start:stop, None]
                den = torch.addcmul(sizes_plus_one, k_s, anchor_size, value=-1.0)  # 1 + |T \ S|
                return k_s.div_(den)
            c = counts.counts(start, stop)
            weights = relations.sd_weights_from_counts(c, *options)
            if self.symmetric:
                # The same intersections seen from the other side: w(j, i) laid out as [i, j].
                other = relations.PairCounts(c.inter, c.sample_size, c.anchor_size)
                weights = torch.sqrt(weights * relations.sd_weights_from_counts(other, *options))
            return weights

        return block


class SupConLoss(WeightedSupConLoss):
    """SupCon (Khosla et al. 2020): single-label class ids, w = [y_i = y_p]."""

    name = "supcon"
    color = "#eeca3b"
    summary = "one class per item: w = [y_i = y_p]"

    label_kind = "single"
    binary_weights = True

    def sample_block(self, labels, views, dtype, device) -> SampleBlock:
        classes = labels.to(device)

        def block(start: int, stop: int) -> Tensor:
            return (classes[start:stop, None] == classes[None, :]).to(dtype)

        return block


class SimCLRLoss(WeightedSupConLoss):
    """SimCLR / NT-Xent: no labels; the positives are the other views of the same sample."""

    name = "simclr"
    color = "#8c8c8c"
    summary = "no labels: only the other views of the same item pull"

    label_kind = "none"
    min_views = 2

    def block_weights(self, labels, batch, views, dtype, device) -> BlockWeights:
        # n_i = V - 1 other views of the sample, r_i = 1: what the count normaliser gives here.
        block = _same_sample_block(batch, dtype, device)
        return BlockWeights(batch, views, block, "count", binary=True)

    def sample_weights(self, labels, dtype: torch.dtype) -> Tensor:
        raise ValueError("SimCLRLoss has no labels: its weights come from views, see view_weights")


class AllLoss(WeightedSupConLoss):
    """ALL: positives share exactly the same label set, w = [S = T] (empty sets never match)."""

    name = "all"
    color = "#4c78a8"
    summary = "w = [S = T]: only identical label sets pull"
    binary_weights = True

    def sample_block(self, labels, views, dtype, device) -> SampleBlock:
        counts = relations.BlockCounts(labels, dtype, device)

        def block(start: int, stop: int) -> Tensor:
            c = counts.counts(start, stop)
            # S = T iff T is inside S and both have the same size; an empty S matches nothing.
            same_size = (c.anchor_size == c.sample_size) & (c.anchor_size > 0)  # (b, B)
            return ((c.inter == c.sample_size) & same_size).to(dtype)

        return block


class AnyLoss(WeightedSupConLoss):
    """ANY: positives share at least one label, w = [S n T != {}]."""

    name = "any"
    color = "#72b7b2"
    summary = "w = [S∩T ≠ ∅]: every overlap pulls fully"
    binary_weights = True

    def sample_block(self, labels, views, dtype, device) -> SampleBlock:
        counts = relations.BlockCounts(labels, dtype, device)
        return lambda start, stop: (counts.inter(start, stop) > 0).to(dtype)


class JaccardLoss(WeightedSupConLoss):
    """Jaccard-weighted: w = |S n T| / |S u T| where it exceeds ``threshold`` (default 0)."""

    name = "jaccard"
    color = "#54a24b"
    summary = "w = |S∩T|/|S∪T|: overlap, scored symmetrically"
    options = (
        Option("threshold", float, 0.0, "pairs at or below this Jaccard index do not pull",
               low=0.0, high=1.0, high_open=True, group="weights"),
        NORMALIZE,
        CHUNK_SIZE,
    )  # fmt: skip

    def __init__(
        self,
        temperature: float = 0.07,
        threshold: float = 0.0,
        normalize: str = "count",
        chunk_size: int | None = None,
    ):
        super().__init__(temperature, normalize, chunk_size)
        if not 0.0 <= float(threshold) < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.threshold = float(threshold)

    def sample_block(self, labels, views, dtype, device) -> SampleBlock:
        counts = relations.BlockCounts(labels, dtype, device)

        def block(start: int, stop: int) -> Tensor:
            jaccard = relations.similarity_factor_from_counts(counts.counts(start, stop), "jaccard")
            return torch.where(jaccard > self.threshold, jaccard, torch.zeros_like(jaccard))

        return block


class MulSupConLoss(WeightedSupConLoss):
    """MulSupCon (Zhang & Wu 2024): one anchor row per (view i, label c of i), without building them.

    Row (i, c) has positives P_c(i) = views p != i whose sample carries c, and loss
    -(1/|P_c(i)|) sum_{p in P_c(i)} log p(i, p); the loss is the mean over rows with a positive.
    All rows of view i share one softmax, so they fold into one weighted anchor:
    w(i, p) = sum_{c in S n T_p} 1 / |P_c(i)|, n_i = r_i = number of rows of i with a positive.
    |P_c(i)| = V * (samples in the batch carrying c) - 1, the same for every view carrying c.
    """

    name = "mulsupcon"
    color = "#b279a2"
    summary = "one anchor row per label: w depends on S∩T only, so R5 pulls like R2"
    options = (CHUNK_SIZE,)

    def __init__(self, temperature: float = 0.07, chunk_size: int | None = None):
        super().__init__(temperature, "count", chunk_size)

    @staticmethod
    def label_weights(y: Tensor, views: int) -> tuple[Tensor, Tensor]:
        """(B, B) weights sum_{c in S n T} 1/|P_c| between samples, and (B,) rows with a positive.

        The diagonal is what a sample carrying exactly the anchor's labels gets, sum_{c in S} 1/|P_c|.
        """
        positives_per_label = views * y.sum(0) - 1  # (C,): |P_c(i)| for any view i carrying c
        has_rows = positives_per_label > 0
        inverse = torch.where(
            has_rows, 1.0 / positives_per_label.clamp_min(1), torch.zeros_like(positives_per_label)
        )
        weights = (y * inverse) @ y.T  # (B, B): sum over shared labels c of 1/|P_c|
        return weights, (y * has_rows).sum(1)

    @staticmethod
    def _label_rows(labels, views: int, dtype, device) -> tuple[Tensor, Tensor]:
        """(C,) 1/|P_c| (0 where a label has no positive) and (B,) rows with a positive, per sample."""
        if isinstance(labels, relations.SparseLabels):
            labels = labels.to(device)
            per_label = labels.label_counts().to(dtype)
            rows_of = torch.repeat_interleave(
                torch.arange(labels.batch, device=device), labels.sizes()
            )
        else:
            labels = labels.to(device=device, dtype=dtype)
            per_label = labels.sum(0)
        positives_per_label = views * per_label - 1  # (C,): |P_c(i)| for any view i carrying c
        has_rows = (positives_per_label > 0).to(dtype)
        inverse = has_rows / positives_per_label.clamp_min(1)
        if isinstance(labels, relations.SparseLabels):
            rows = torch.zeros(labels.batch, dtype=dtype, device=device)
            rows.index_add_(0, rows_of, has_rows[labels.indices])
        else:
            rows = labels @ has_rows
        return inverse, rows

    def block_weights(self, labels, batch, views, dtype, device) -> BlockWeights:
        inverse, rows = self._label_rows(labels, views, dtype, device)
        counts = relations.BlockCounts(labels, dtype, device, label_weights=inverse)
        return BlockWeights(batch, views, counts.inter, "count", row_counts=rows)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    def comparable_weights(self, labels: Tensor) -> Tensor:
        """Weights divided by what an identical sample gets, sum_{c in S} 1/|P_c| (so R2 reads 1).

        Every superset (R5) then reads 1 as well: only the shared labels S n T count.
        """
        y = self._check_labels(labels, len(labels)).to(_weights_dtype(labels))
        weights, _ = self.label_weights(y, 1)
        identical = weights.diagonal().clone()  # (B,): what a copy of the anchor's set would get
        scaled = torch.where(
            identical[:, None] > 0,
            weights / identical.clamp_min(1e-12)[:, None],
            torch.zeros_like(weights),
        )
        return scaled.fill_diagonal_(0.0)


class BCELoss(nn.Module):
    """The non-contrastive reference: a linear multi-label classifier on the same encoder, trained
    with binary cross-entropy on every view. It takes logits (B*V, C) and labels (B*V, C)."""

    name: ClassVar[str] = "bce"
    label_kind: ClassVar[str] = "multi"
    min_views: ClassVar[int] = 1
    contrastive: ClassVar[bool] = False
    options: ClassVar[tuple[Option, ...]] = ()
    color: ClassVar[str] = "#9d755d"
    summary: ClassVar[str] = "binary cross-entropy on a classifier head (no pairs)"

    def __init__(self, temperature: float | None = None):
        super().__init__()
        del (
            temperature
        )  # a classifier has no softmax over pairs; accepted so every loss builds alike

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


Loss = WeightedSupConLoss | BCELoss

#: name -> class, in the order pages and tables list them (sdl first, then its closest rivals)
LOSSES: dict[str, type[Loss]] = {}


def register_loss(cls: type[Loss]) -> type[Loss]:
    """Add a loss class to the registry under ``cls.name`` (usable as a class decorator).

    Raises:
        ValueError: if the class has no name or the name is taken by another class.
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    if LOSSES.get(cls.name, cls) is not cls:
        raise ValueError(f"a loss named {cls.name!r} is registered already")
    LOSSES[cls.name] = cls
    return cls


def unregister_loss(name: str) -> None:
    """Remove a loss from the registry (for tests that register a toy loss)."""
    LOSSES.pop(name, None)


for _cls in (SDLoss, MulSupConLoss, AllLoss, AnyLoss, JaccardLoss, BCELoss, SupConLoss, SimCLRLoss):
    register_loss(_cls)


def loss_class(name: str) -> type[Loss]:
    """The registered class of a loss name.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss name {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_names(*, label_kind: str | None = None, contrastive: bool | None = None) -> list[str]:
    """Registered loss names in registry order, optionally only one label kind or contrastive ones."""
    return [
        name
        for name, cls in LOSSES.items()
        if (label_kind is None or cls.label_kind == label_kind)
        and (contrastive is None or cls.contrastive == contrastive)
    ]


def compared_losses() -> list[str]:
    """The losses whose pair weights can be compared on label sets: contrastive and multi-label."""
    return loss_names(label_kind="multi", contrastive=True)


def loss_options(name: str) -> dict[str, object]:
    """The options a named loss takes (besides ``temperature``), with their defaults."""
    return {o.name: o.default for o in loss_class(name).options}


def loss_label(name: str, options: Mapping[str, object] | None = None) -> str:
    """The loss's name and every option that differs from its default: "sdl (symmetric=True)"."""
    defaults = loss_options(name)
    changed = [f"{k}={v}" for k, v in (options or {}).items() if defaults.get(k, v) != v]
    return f"{name} ({', '.join(changed)})" if changed else name


def parse_loss_options(name: str, options: Mapping[str, object]) -> dict[str, object]:
    """``options`` for loss ``name``, each parsed and checked against its declared type and bounds.

    Raises:
        ValueError: for an unknown option, a bad value, or ``temperature`` (it has its own setting).
    """
    cls = loss_class(name)
    if "temperature" in options:
        raise ValueError(
            "temperature is not a loss option here: set it with the temperature setting "
            "(--temperature on the command line)"
        )
    return parse_options(cls.options, options, f"loss {name!r}")


def build_loss(name: str, temperature: float | None = None, **options: object) -> Loss:
    """Build a named loss: ``build_loss("sdl", temperature=0.1, dissimilarity="ratio")``.

    Raises:
        ValueError: for an unknown name, an option the loss does not take, or a bad value.
    """
    cls = loss_class(name)
    parsed = parse_options(cls.options, options, f"loss {name!r}")
    if temperature is None:
        temperature = TEMPERATURE.default
    return cls(temperature=validate_temperature(temperature), **parsed)
