"""The dense implementation of every loss, frozen as it was before the blockwise core.

Tests and benchmarks/bench_losses.py compare the library against it: it builds the full (N, N)
weight matrix and logits, with ``chunk_size`` cutting anchor rows through activation checkpointing.
Do not change its numbers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sdl import relations

NORMALISERS = ("count", "weight")


@dataclass
class LossOutput:
    """Everything a loss computed, for training (``loss``) and for looking inside (the dashboard).

    N = B * V views. Pair tensors are indexed [anchor view, sample view].
    """

    loss: Tensor  # scalar
    per_anchor: Tensor  # (N,): L_i, 0 where the anchor has no positives
    has_positives: Tensor  # (N,) bool
    reduction_weight: Tensor  # (N,): r_i, 0 where the anchor has no positives
    normaliser: Tensor  # (N,): n_i
    weights: Tensor  # (N, N): w between views, diagonal 0
    log_prob: Tensor | None  # (N, N): log softmax over a != i (diagonal 0); kept on request

    @property
    def anchors_without_positives(self) -> int:
        return int((~self.has_positives).sum())

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


def _row_losses(
    anchors: Tensor,
    samples: Tensor,
    rows: Tensor,
    weights: Tensor,
    normaliser: Tensor,
    tau: float,
    keep_log_prob: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Losses of the anchor views ``rows`` against every view; also their log-probabilities.

    Uses sum_p w_ip log p_ip = sum_p w_ip logit_ip - W_i logsumexp_i, so no (n, N) log-probability
    matrix is built (or kept for backward) unless ``keep_log_prob`` asks for it.
    """
    logits = (anchors / tau) @ samples.T  # (n, N): logits of these anchors against every view
    # The self pair leaves the softmax. Its logit becomes the lowest finite number, whose exp is 0
    # and whose product with its zero weight is 0 (-inf would give 0 * -inf = NaN). In place: the
    # matmul's backward does not need its output.
    self_pair = (torch.arange(len(rows), device=rows.device), rows)
    logits[self_pair] = torch.finfo(logits.dtype).min
    # logsumexp subtracts the row max: stable at small tau and large logits.
    log_norm = torch.logsumexp(logits, dim=1)  # (n,)
    pulled = (weights * logits).sum(1)  # (n,): sum_p w_ip logit_ip
    losses = (weights.sum(1) * log_norm - pulled) / normaliser.clamp_min(1e-12)
    log_prob = None
    if keep_log_prob:
        log_prob = logits - log_norm[:, None]  # (n, N)
        log_prob[self_pair] = 0.0
    return losses, log_prob


def weighted_supcon(
    features: Tensor,
    weights: Tensor,
    normaliser: Tensor,
    temperature: float,
    chunk_size: int | None = None,
    keep_log_prob: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """The shared core: per-anchor losses (N,) for normalised features (N, D) and weights (N, N).

    With ``chunk_size`` the anchors are processed in blocks of rows and each block is recomputed in
    the backward pass (activation checkpointing), so memory holds one (chunk, N) block at a time
    instead of several (N, N) matrices.
    """
    n = features.shape[0]
    all_rows = torch.arange(n, device=features.device)
    if chunk_size is None or chunk_size >= n:
        return _row_losses(
            features, features, all_rows, weights, normaliser, temperature, keep_log_prob
        )
    parts = []
    for start in range(0, n, chunk_size):
        rows = all_rows[start : start + chunk_size]
        part = checkpoint(
            lambda a, s, r, w, m: _row_losses(a, s, r, w, m, temperature)[0],
            features[rows],
            features,
            rows,
            weights[rows],
            normaliser[rows],
            use_reentrant=False,
        )
        parts.append(part)
    return torch.cat(parts), None


class WeightedSupConLoss(nn.Module):
    """Base class: subclasses only say which pairs are positive and how much (``sample_weights``).

    Args:
        temperature: softmax temperature tau > 0 (default 0.07).
        normalize: n_i is ``count`` (number of positives, default) or ``weight`` (sum of weights).
        chunk_size: process anchors in blocks of this many rows to bound memory (None: all at once).
    """

    #: what ``labels`` must be: "multi" (B, C) multi-hot, "single" (B,) class ids, "none" (ignored)
    label_kind = "multi"
    #: smallest number of views per sample the loss can work with
    min_views = 1
    contrastive = True  # as in sdl.losses: the trainer asks (a classifier's loss trains no pairs)

    def __init__(
        self, temperature: float = 0.07, normalize: str = "count", chunk_size: int | None = None
    ):
        super().__init__()
        temperature = float(temperature)
        if not temperature > 0 or not torch.isfinite(torch.tensor(temperature)):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if normalize not in NORMALISERS:
            raise ValueError(f"normalize must be one of {NORMALISERS}, got {normalize!r}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
        self.temperature = temperature
        self.normalize = normalize
        self.chunk_size = None if chunk_size is None else int(chunk_size)

    # --- what a subclass provides -------------------------------------------------------------
    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, B) weights between samples; the view-level matrix repeats them for every view pair."""
        raise NotImplementedError

    def view_weights(
        self,
        labels: Tensor | None,
        batch: int,
        views: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(N, N) pair weights, (N,) normaliser n_i and (N,) reduction weight r_i."""
        weights = self.sample_weights(labels, dtype).to(device=device, dtype=dtype)
        weights = expand_views(weights, views)  # (N, N)
        positive = weights > 0
        if self.normalize == "count":
            normaliser = positive.sum(1).to(dtype)
        else:
            normaliser = weights.sum(1)
        return weights, normaliser, positive.any(1).to(dtype)

    # --- shared ---------------------------------------------------------------------------------
    def _check_labels(self, labels: Tensor | None, batch: int) -> Tensor | None:
        if self.label_kind == "none":
            return None
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels")
        if not isinstance(labels, Tensor):
            labels = torch.as_tensor(labels)
        if self.label_kind == "single":
            if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
                raise ValueError(
                    "labels must be a (B,) tensor of integer class ids, "
                    f"got shape {tuple(labels.shape)} dtype {labels.dtype}"
                )
        else:
            labels = relations.check_labels(labels)
        if labels.shape[0] != batch:
            raise ValueError(
                f"labels has {labels.shape[0]} rows but features has batch size {batch}"
            )
        return labels

    def forward_detailed(
        self, features: Tensor, labels: Tensor | None = None, keep_log_prob: bool = False
    ) -> LossOutput:
        """The loss and what it is made of. See :class:`LossOutput`."""
        features = check_features(features)
        batch, views, dim = features.shape
        if views < self.min_views:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_views} views per sample, "
                f"got features of shape {tuple(features.shape)}"
            )
        labels = self._check_labels(labels, batch)
        dtype = _compute_dtype(features)
        z = F.normalize(features.reshape(batch * views, dim).to(dtype), dim=1)  # (N, D)
        weights, normaliser, reduction = self.view_weights(labels, batch, views, dtype, z.device)
        per_anchor, log_prob = weighted_supcon(
            z, weights, normaliser, self.temperature, self.chunk_size, keep_log_prob
        )
        has_pos = reduction > 0
        per_anchor = torch.where(has_pos, per_anchor, torch.zeros_like(per_anchor))
        total = reduction.sum()
        if bool(total > 0):
            loss = (per_anchor * reduction).sum() / total
        else:
            # No anchor has a positive: a zero that stays on the graph, so backward still works.
            loss = z.sum() * 0.0
        return LossOutput(loss, per_anchor, has_pos, reduction, normaliser, weights, log_prob)

    def forward(self, features: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.forward_detailed(features, labels).loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize!r}"


class SDLoss(WeightedSupConLoss):
    """Similarity-Dissimilarity loss: w = K^s * K^d (see :func:`sdl.relations.sd_weights`)."""

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

    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        counts = relations.counts_of_checked(labels.to(dtype))
        return relations.sd_weights_from_counts(
            counts, self.similarity, self.dissimilarity, self.components, self.symmetric
        )


class SupConLoss(WeightedSupConLoss):
    """SupCon (Khosla et al. 2020): single-label class ids, w = [y_i = y_p]."""

    label_kind = "single"

    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        return (labels[:, None] == labels[None, :]).to(dtype)


class SimCLRLoss(WeightedSupConLoss):
    """SimCLR / NT-Xent: no labels; the positives are the other views of the same sample."""

    label_kind = "none"
    min_views = 2

    def sample_weights(self, labels: Tensor | None, dtype: torch.dtype) -> Tensor:
        raise AssertionError("unused: view_weights is overridden")

    def view_weights(self, labels, batch, views, dtype, device):
        same_sample = torch.eye(batch, dtype=dtype, device=device)
        weights = expand_views(same_sample, views)  # (N, N)
        normaliser = torch.full((batch * views,), float(views - 1), dtype=dtype, device=device)
        return weights, normaliser, torch.ones(batch * views, dtype=dtype, device=device)


class AllLoss(WeightedSupConLoss):
    """ALL: positives share exactly the same label set, w = [S = T] (empty sets never match)."""

    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        counts = relations.counts_of_checked(labels.to(dtype))
        same = (counts.extra == 0) & (counts.missing == 0) & (counts.inter > 0)
        return same.to(dtype)


class AnyLoss(WeightedSupConLoss):
    """ANY: positives share at least one label, w = [S n T != {}]."""

    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        return (relations.counts_of_checked(labels.to(dtype)).inter > 0).to(dtype)


class JaccardLoss(WeightedSupConLoss):
    """Jaccard-weighted: w = |S n T| / |S u T| where it exceeds ``threshold`` (default 0)."""

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

    def sample_weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        jaccard = relations.similarity_factor_from_counts(
            relations.counts_of_checked(labels.to(dtype)), "jaccard"
        )
        return torch.where(jaccard > self.threshold, jaccard, torch.zeros_like(jaccard))


class MulSupConLoss(WeightedSupConLoss):
    """MulSupCon (Zhang & Wu 2024): one anchor row per (view i, label c of i), without building them.

    Row (i, c) has positives P_c(i) = views p != i whose sample carries c, and loss
    -(1/|P_c(i)|) sum_{p in P_c(i)} log p(i, p); the loss is the mean over rows with a positive.
    All rows of view i share one softmax, so they fold into one weighted anchor:
    w(i, p) = sum_{c in S n T_p} 1 / |P_c(i)|, n_i = r_i = number of rows of i with a positive.
    |P_c(i)| = V * (samples in the batch carrying c) - 1, the same for every view carrying c.
    """

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

    def view_weights(self, labels, batch, views, dtype, device):
        y = labels.to(device=device, dtype=dtype)  # (B, C)
        weights, rows = self.label_weights(y, views)
        rows = rows.repeat_interleave(views)  # (N,): rows with a positive
        return expand_views(weights, views), rows, rows

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


LOSSES: dict[str, type[WeightedSupConLoss]] = {
    "sdl": SDLoss,
    "supcon": SupConLoss,
    "simclr": SimCLRLoss,
    "all": AllLoss,
    "any": AnyLoss,
    "jaccard": JaccardLoss,
    "mulsupcon": MulSupConLoss,
}


def loss_options(name: str) -> dict[str, object]:
    """The options a named loss takes, with their defaults."""
    cls = _loss_class(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def _loss_class(name: str) -> type[WeightedSupConLoss]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss name {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]


def build_loss(name: str, **options) -> WeightedSupConLoss:
    """Build a named loss: ``build_loss("sdl", temperature=0.1, dissimilarity="ratio")``.

    Raises:
        ValueError: for an unknown name or an option the loss does not take.
    """
    cls = _loss_class(name)
    allowed = loss_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for loss {name!r}; it takes {sorted(allowed)}"
        )
    return cls(**options)
