"""Contrast against the global batch under torch.distributed (torchrun, DDP).

Each process holds a local batch. :func:`gather_batch` concatenates every process's features (with a
differentiable all_gather) and labels (a plain all_gather: labels carry no gradient), in rank order,
so that every process computes the loss of the whole global batch::

    features, labels = gather_batch(model(x), y)   # (world * B, ...) on every rank
    loss = build_loss("sdl")(features, labels)
    loss.backward()                                # under DistributedDataParallel

Gradient semantics: the backward of ``torch.distributed.nn.functional.all_gather`` *sums* the
gradients that every rank sends for a slice. Every rank computes the same global loss L, so the
gradient that reaches rank r's local features is world_size * dL/dx_r, world_size times what a single
process would get for that slice of the concatenated batch. DistributedDataParallel then *averages*
parameter gradients over ranks: (1 / world_size) * sum_r J_r^T (world_size * dL/dx_r) =
sum_r J_r^T dL/dx_r = dL/dtheta, exactly the single-process gradient on the global batch. Without
DDP (or with a hand-written all-reduce that sums), divide by world_size yourself.

Every rank must hold the same local batch size (all_gather needs equal shapes); a
``DistributedSampler`` with ``drop_last=True`` gives that. Unequal sizes raise ValueError rather
than being padded, because padded rows would enter the softmax denominator as fake negatives.

When torch.distributed is not initialised, or the world has one process, everything here is the
identity and the inputs come back unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.nn.functional import all_gather as differentiable_all_gather


def is_distributed() -> bool:
    """True inside an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized()


def world_size(group: dist.ProcessGroup | None = None) -> int:
    """Number of processes in ``group`` (default: the whole world); 1 when not distributed."""
    return dist.get_world_size(group) if is_distributed() else 1


def rank(group: dist.ProcessGroup | None = None) -> int:
    """This process's rank in ``group``; 0 when not distributed."""
    return dist.get_rank(group) if is_distributed() else 0


def _check_equal_batches(batch: int, device: torch.device, group) -> None:
    size = torch.tensor([batch], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(world_size(group))]
    dist.all_gather(sizes, size, group=group)
    found = [int(s) for s in sizes]
    if len(set(found)) != 1:
        raise ValueError(
            "features must have the same local batch size on every rank to be gathered, "
            f"got {found} (use a DistributedSampler with drop_last=True)"
        )


def gather_features(features: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """(B, ...) local features -> (world * B, ...) global features, differentiably, in rank order.

    Raises:
        ValueError: if the local batch size differs between ranks.
    """
    if world_size(group) == 1:
        return features
    _check_equal_batches(features.shape[0], features.device, group)
    return torch.cat(differentiable_all_gather(features, group=group), dim=0)


def gather_labels(labels: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """(B, ...) local labels -> (world * B, ...) global labels in rank order; no gradient flows.

    Raises:
        ValueError: if the local batch size differs between ranks.
    """
    if world_size(group) == 1:
        return labels
    _check_equal_batches(labels.shape[0], labels.device, group)
    # Not every backend moves bool tensors (gloo does not), so send them as bytes.
    send = labels.detach().contiguous()
    send = send.to(torch.uint8) if send.dtype == torch.bool else send
    parts = [torch.empty_like(send) for _ in range(world_size(group))]
    dist.all_gather(parts, send, group=group)
    gathered = torch.cat(parts, dim=0)
    return gathered.bool() if labels.dtype == torch.bool else gathered


def gather_batch(
    features: Tensor, labels: Tensor | None = None, group: dist.ProcessGroup | None = None
) -> tuple[Tensor, Tensor | None]:
    """Local (features, labels) -> global (features, labels), the same on every rank.

    Args:
        features: (B, D) or (B, V, D) local features; the gather is differentiable.
        labels: (B, C) multi-hot or (B,) class ids, or None (SimCLR); gathered without gradient.
        group: process group (default: the whole world).

    Returns:
        (world * B, ...) features and labels, rank 0's rows first; the inputs themselves when
        torch.distributed is not initialised or the world has one process.

    Raises:
        ValueError: if features and labels disagree on B, or B differs between ranks.
    """
    if labels is not None and labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} rows but features has batch size {features.shape[0]}"
        )
    global_features = gather_features(features, group)
    global_labels = None if labels is None else gather_labels(labels, group)
    return global_features, global_labels


@dataclass
class Dist:
    """This process's place in the run: its rank and the number of processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when RANK/WORLD_SIZE say so; pick this process's device.

    ``device_choice`` is "auto" (CUDA if there is one, else the CPU) or a torch device string.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    this_rank = int(os.environ.get("RANK", "0"))
    if device_choice == "auto":
        device_choice = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_choice)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(this_rank, world), device
