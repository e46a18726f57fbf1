"""The blockwise weighted-SupCon core shared by every loss in :mod:`sdl.losses`.

For unit feature rows z (N, D), N = B * V views, and pair weights w between views,

    L_i = (W_i * logsumexp_{a != i}(z_i . z_a / tau) - sum_p w(i, p) z_i . z_p / tau) / n_i
    L   = sum_i r_i L_i / sum_i r_i,         W_i = sum_p w(i, p)

(docs/method.md "The loss"). The anchors are walked in blocks of whole samples. A block computes
its logits (b V, N), its weights straight from the labels (the loss's ``sample_block``, (b, B)
between samples, repeated for every view pair with the self pair set to 0), its log-sum-exp and
its losses; nothing of size N x N is ever held, so peak memory is O(block x N + N x D).

Because L is a scalar and n_i, r_i are known per row, the same pass also forms the block's logit
gradient, dL/dlogit(i, a) = (W_i softmax_i(a) - w(i, a)) / n_i * r_i / sum r (docs/method.md
"Gradient"), and accumulates grad_z = (G z + G^T z_block) / tau. The backward of the
``torch.autograd.Function`` then only scales that (N, D) gradient by the incoming one: the logits
are computed once, not recomputed, and no activation is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: elements of one (block views, N) matrix when no block size is given: about 16 MiB in float32,
#: large enough for an efficient matmul, small enough that a few of them stay far below N x N.
BLOCK_ELEMENTS = 2**22


@dataclass(frozen=True)
class BlockWeights:
    """What a loss tells the core about one batch.

    Attributes:
        batch: B, the number of samples.
        views: V, views per sample; view k of the (N, D) features belongs to sample k // V.
        sample_block: ``(start, stop) -> (stop - start, B)`` non-negative weights between samples
            start..stop-1 (anchors) and every sample; entry [s, s] is the weight between two
            different views of sample s. It must return a new tensor (the core writes into it).
        normalize: n_i is ``count`` (number of positives) or ``weight`` (sum of weights).
        row_counts: optional (B,) n_i = r_i for every view of each sample (MulSupCon's label rows
            with a positive); ``normalize`` is then unused.
    """

    batch: int
    views: int
    sample_block: Callable[[int, int], Tensor]
    normalize: str = "count"
    row_counts: Tensor | None = None


@dataclass(frozen=True)
class BlockResult:
    """The loss (differentiable) and its (N,) parts, which carry no gradient."""

    loss: Tensor  # scalar
    per_anchor: Tensor  # (N,): L_i, 0 where the anchor has no positives
    normaliser: Tensor  # (N,): n_i
    reduction: Tensor  # (N,): r_i, 0 where the anchor has no positives


def samples_per_block(batch: int, views: int, block_views: int | None = None) -> int:
    """Samples in one block: ``block_views // views`` (at least 1), or sized by BLOCK_ELEMENTS."""
    if block_views is None:
        block_views = BLOCK_ELEMENTS // (batch * views)
    return max(1, min(batch, int(block_views) // views))


def block_normaliser(
    spec: BlockWeights, sample_w: Tensor, start: int, stop: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(b,) n_i, r_i and W_i of the views of samples start..stop-1, from their (b, B) weights."""
    views = spec.views
    idx = torch.arange(stop - start, device=sample_w.device)
    self_w = sample_w[idx, start + idx]  # (b,): weight between two views of the same sample
    # Each other sample contributes V views, the anchor's own sample V - 1.
    total = views * sample_w.sum(1) - self_w
    if spec.row_counts is not None:
        rows = spec.row_counts[start:stop].to(sample_w.dtype)
        return rows, rows, total
    positives = views * (sample_w > 0).sum(1).to(sample_w.dtype) - (self_w > 0).to(sample_w.dtype)
    normaliser = positives if spec.normalize == "count" else total
    return normaliser, (positives > 0).to(sample_w.dtype), total


def _view_weights(spec: BlockWeights, sample_w: Tensor, start: int, stop: int) -> Tensor:
    """(b V, N) weights between the block's views and every view, self pairs 0."""
    b, batch, views = stop - start, spec.batch, spec.views
    if views == 1:
        weights = sample_w  # the core owns it: safe to write the diagonal in place
    else:
        weights = sample_w[:, None, :, None].expand(b, views, batch, views).reshape(b * views, -1)
    rows = torch.arange(b * views, device=sample_w.device)
    weights[rows, start * views + rows] = 0.0
    return weights


def _run(
    z: Tensor, spec: BlockWeights, temperature: float, block: int, want_grad: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """One pass over the blocks: (loss, per_anchor, normaliser, reduction, grad_z or None)."""
    batch, views = spec.batch, spec.views
    n, dtype = z.shape[0], z.dtype
    per_anchor = torch.zeros(n, dtype=dtype, device=z.device)
    normaliser = torch.zeros_like(per_anchor)
    reduction = torch.zeros_like(per_anchor)
    grad = torch.zeros_like(z) if want_grad else None
    numerator = torch.zeros((), dtype=dtype, device=z.device)
    inv_tau = 1.0 / temperature
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        lo, hi = start * views, stop * views  # the block's view rows
        sample_w = spec.sample_block(start, stop).to(dtype)  # (b, B)
        n_s, r_s, total_s = block_normaliser(spec, sample_w, start, stop)
        weights = _view_weights(spec, sample_w, start, stop)  # (bV, N)
        anchors = z[lo:hi]  # (bV, D)
        logits = (anchors * inv_tau) @ z.T  # (bV, N)
        pulled = (weights * logits).sum(1)  # (bV,): sum_p w_ip logit_ip (self weight is 0)
        rows = torch.arange(hi - lo, device=z.device)
        logits[rows, lo + rows] = -torch.inf  # the self pair leaves the softmax
        # The max over a != i keeps exp finite and away from underflow at small tau.
        shift = logits.amax(1, keepdim=True)  # (bV, 1)
        exp = logits.sub_(shift).exp_()  # (bV, N): exp(logit - shift), 0 on the self pair
        sums = exp.sum(1)  # (bV,)
        log_norm = shift.squeeze(1) + sums.log()  # (bV,): logsumexp over a != i
        n_v = n_s.repeat_interleave(views)
        r_v = r_s.repeat_interleave(views)
        total_v = total_s.repeat_interleave(views)
        has_pos = r_v > 0
        losses = (total_v * log_norm - pulled) / n_v.clamp_min(torch.finfo(dtype).tiny)
        losses = torch.where(has_pos, losses, torch.zeros_like(losses))
        per_anchor[lo:hi], normaliser[lo:hi], reduction[lo:hi] = losses, n_v, r_v
        numerator += (r_v * losses).sum()
        if grad is not None:
            # G = (W_i softmax - w) * r_i / n_i, built in place over exp; 1 / (tau sum r) at the end.
            scale = torch.where(has_pos, r_v / n_v.clamp_min(1e-30), torch.zeros_like(r_v))
            exp.mul_((scale * total_v / sums)[:, None])
            exp.addcmul_(weights, scale[:, None], value=-1.0)  # (bV, N): G
            grad[lo:hi].addmm_(exp, z)  # d/dz_i: G z
            grad.addmm_(exp.T, anchors)  # d/dz_a: G^T z_block
    total = reduction.sum()
    if bool(total > 0):
        loss = numerator / total
        if grad is not None:
            grad.mul_(inv_tau / total)
    else:  # no anchor has a positive: the loss is 0 and so is its gradient
        loss = numerator * 0.0
    return loss, per_anchor, normaliser, reduction, grad


class _BlockwiseSupCon(torch.autograd.Function):
    """loss(z) with the gradient formed during the forward pass (see the module docstring)."""

    @staticmethod
    def forward(ctx, z, spec, temperature, block, want_grad):
        loss, per_anchor, normaliser, reduction, grad = _run(
            z.detach(), spec, temperature, block, want_grad
        )
        ctx.save_for_backward(grad if grad is not None else torch.zeros_like(z))
        ctx.mark_non_differentiable(per_anchor, normaliser, reduction)
        return loss, per_anchor, normaliser, reduction

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, *unused):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None


def blockwise_supcon(
    z: Tensor, spec: BlockWeights, temperature: float, block_views: int | None = None
) -> BlockResult:
    """The weighted-SupCon loss of unit rows ``z`` (N, D), N = B V, walked in blocks of anchors.

    Args:
        z: (N, D) L2-normalised features, float32 or float64; view k belongs to sample k // V.
        spec: the loss's weights, see :class:`BlockWeights`.
        temperature: tau > 0 (validated by :func:`sdl.losses.validate_temperature`).
        block_views: anchor views per block (rounded down to whole samples, at least one sample);
            None sizes blocks to about BLOCK_ELEMENTS entries.

    Returns:
        :class:`BlockResult`; only ``loss`` carries a gradient (first order only).

    Raises:
        ValueError: if z does not have B * V rows.
    """
    if z.ndim != 2 or z.shape[0] != spec.batch * spec.views:
        raise ValueError(
            f"z must be (B * V, D) = ({spec.batch * spec.views}, D), got shape {tuple(z.shape)}"
        )
    block = samples_per_block(spec.batch, spec.views, block_views)
    want_grad = torch.is_grad_enabled() and z.requires_grad
    loss, per_anchor, normaliser, reduction = _BlockwiseSupCon.apply(
        z, spec, float(temperature), block, want_grad
    )
    return BlockResult(loss, per_anchor, normaliser, reduction)
