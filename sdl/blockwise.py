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

import math
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
        binary: the weights are only ever 0 or 1, so the number of positives is their sum.
    """

    batch: int
    views: int
    sample_block: Callable[[int, int], Tensor]
    normalize: str = "count"
    row_counts: Tensor | None = None
    binary: bool = False


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
    if spec.binary:
        positives = total
    else:
        # sign() of non-negative weights is [w > 0], summed in the float dtype: several times
        # faster than summing a bool tensor, which is first cast to int64.
        positives = views * torch.sign(sample_w).sum(1) - torch.sign(self_w)
    normaliser = positives if spec.normalize == "count" else total
    return normaliser, (positives > 0).to(sample_w.dtype), total


def view_weights(spec: BlockWeights, sample_w: Tensor, start: int, stop: int) -> Tensor:
    """(b V, N) weights between the block's views and every view, self pairs 0."""
    b, batch, views = stop - start, spec.batch, spec.views
    if views == 1:
        weights = sample_w  # the core owns it: safe to write the diagonal in place
    else:
        weights = sample_w[:, None, :, None].expand(b, views, batch, views).reshape(b * views, -1)
    rows = torch.arange(b * views, device=sample_w.device)
    weights[rows, start * views + rows] = 0.0
    return weights


def _shifted_logits(z: Tensor, inv_tau: float) -> tuple[Tensor, Tensor] | None:
    """(anchors, samples) with an extra column, so that one matmul gives logit - 1/tau directly.

    For unit rows every logit lies in [-1/tau, 1/tau], so exp(logit - 1/tau) neither overflows nor,
    while 2/tau stays below ~80% of the dtype's exp range, underflows: then the row max (a pass
    over the block) is not needed and the shift costs one column of the matmul instead of a pass.
    None where tau is too small for that.
    """
    if 2.0 * inv_tau > 0.8 * math.log(torch.finfo(z.dtype).max):
        return None
    ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
    anchors = torch.cat([z * inv_tau, -inv_tau * ones], dim=1)  # (N, D + 1)
    samples = torch.cat([z, ones], dim=1)  # (N, D + 1)
    return anchors, samples


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
    shifted = _shifted_logits(z, inv_tau)
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        lo, hi = start * views, stop * views  # the block's view rows
        sample_w = spec.sample_block(start, stop).to(dtype)  # (b, B)
        n_s, r_s, total_s = block_normaliser(spec, sample_w, start, stop)
        weights = view_weights(spec, sample_w, start, stop)  # (bV, N)
        del sample_w
        anchors = z[lo:hi]  # (bV, D)
        n_v = n_s.repeat_interleave(views)
        r_v = r_s.repeat_interleave(views)
        total_v = total_s.repeat_interleave(views)  # W_i
        if shifted is not None:
            logits = shifted[0][lo:hi] @ shifted[1].T  # (bV, N): logit - 1/tau
        else:
            logits = (anchors * inv_tau) @ z.T  # (bV, N)
        # sum_p w_ip (logit_ip - shift_i); the self weight is 0, so its logit does not count.
        pulled = (weights * logits).sum(1)  # (bV,)
        rows = torch.arange(hi - lo, device=z.device)
        logits[rows, lo + rows] = -torch.inf  # the self pair leaves the softmax
        if shifted is None:  # small tau: shift by the row max over a != i
            shift = logits.amax(1, keepdim=True)  # (bV, 1)
            logits.sub_(shift)
            pulled -= total_v * shift.squeeze(1)
        exp = logits.exp_()  # (bV, N): exp(logit - shift), 0 on the self pair
        sums = exp.sum(1)  # (bV,)
        has_pos = r_v > 0
        # W_i logsumexp - sum_p w_ip logit_ip, with the shift cancelling between the two terms
        losses = (total_v * sums.log() - pulled) / n_v.clamp_min(torch.finfo(dtype).tiny)
        losses = torch.where(has_pos, losses, torch.zeros_like(losses))
        per_anchor[lo:hi], normaliser[lo:hi], reduction[lo:hi] = losses, n_v, r_v
        numerator += (r_v * losses).sum()
        if grad is not None:
            # G = (W_i softmax - w) r_i / n_i = a_i (exp - (sums_i / W_i) w), a_i = r_i W_i / (n_i sums_i).
            # One pass builds exp - (sums / W) w in place; a_i scales the (bV, D) products instead.
            safe_total = torch.where(has_pos, total_v, torch.ones_like(total_v))
            ratio = torch.where(has_pos, sums / safe_total, torch.zeros_like(sums))
            row_scale = torch.where(
                has_pos, r_v * total_v / (n_v.clamp_min(1e-30) * sums), torch.zeros_like(sums)
            )
            exp.addcmul_(weights, ratio[:, None], value=-1.0)  # (bV, N): G / a
            del weights
            grad[lo:hi].addcmul_(exp @ z, row_scale[:, None])  # d/dz_i: G z
            grad.addmm_(exp.T, anchors * row_scale[:, None])  # d/dz_a: G^T z_block
        del logits, exp
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
        # The block math runs in z's dtype (float32 or float64): an autocast region around the
        # loss (AMP training) must not turn the logits and their exp into float16.
        with torch.autocast(z.device.type, enabled=False):
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
