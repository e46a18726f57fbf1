"""A toy multi-label set trained on the unit sphere in 3-D, step by step, for teaching.

Each item is a free 3-D vector, optimised directly with one of the project's losses
(:func:`sdl.losses.build_loss`), one view per item, the whole set as one batch. Every step is
recorded, so a page can play the training back as an animation, and for a chosen anchor the run
keeps the pull of each pair: the gradient of the anchor's loss with respect to its logit with each
item (docs/method.md, "Gradient"), negative where the loss pulls the item closer. With the same seed,
two losses start from the same positions, so they can be watched side by side.

The default set is the worked example of docs/method.md: the anchor {0,1,2} and the samples {0,1}
(R4), {0,1,2,3} (R5), {0,3} (R3) and {3,4} (R1), a few copies of each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from sdl.losses import LOSSES, build_loss
from sdl.relations import Relation, relation_matrix

#: losses that take multi-label sets with one view per item
PLAYGROUND_LOSSES = tuple(name for name, cls in LOSSES.items() if cls.label_kind == "multi")
WORKED_EXAMPLE = ((0, 1, 2), (0, 1), (0, 1, 2, 3), (0, 3), (3, 4))
MAX_ITEMS = 60
MAX_LABEL = 19
MAX_STEPS = 1000
EMPTY_SET = ("-", "{}", "∅")
_LINE = re.compile(r"^\{?\s*(?P<set>[^}x×*]*?)\s*\}?\s*(?:[x×*]\s*(?P<copies>\d+))?$")


@dataclass(frozen=True)
class PlaygroundRun:
    """One loss trained on one label set; n items, F = steps + 1 recorded frames (the start first).

    Attributes:
        loss: the loss name.
        label_sets: the items' label sets, in item order.
        labels: (n, C) multi-hot matrix of the label sets.
        anchor: the item whose pulls are recorded.
        relations: (n,) relation id (1..5) of each item to the anchor; the anchor itself is 2.
        weights: (n,) the loss's weight w(anchor, j), on a scale where an identical item has 1
            (MulSupCon's folded weights are divided by the anchor's own, docs/method.md); 0 on the anchor.
        frames: (F, n, 3) unit vectors, the positions at every step.
        pulls: (F, n) dL_anchor / d logit(anchor, j) at every step: < 0 pulls j closer, > 0 pushes.
        losses: (F,) the loss of the whole set at every step (the last after the last update).
    """

    loss: str
    label_sets: tuple[frozenset[int], ...]
    labels: np.ndarray
    anchor: int
    relations: np.ndarray
    weights: np.ndarray
    frames: np.ndarray
    pulls: np.ndarray
    losses: np.ndarray

    def cosines(self, frame: int = -1) -> np.ndarray:
        """(n,) cosine of every item with the anchor at ``frame`` (default the last)."""
        points = self.frames[frame]
        return points @ points[self.anchor]


def worked_example(copies: int = 3) -> list[frozenset[int]]:
    """The label sets of docs/method.md's worked example, ``copies`` of each, the anchor's first.

    Raises:
        ValueError: if ``copies`` is not an integer from 1 to MAX_ITEMS // 5.
    """
    top = MAX_ITEMS // len(WORKED_EXAMPLE)
    if (
        isinstance(copies, bool)
        or not isinstance(copies, int | np.integer)
        or not 1 <= copies <= top
    ):
        raise ValueError(f"copies must be an integer from 1 to {top}, got {copies!r}")
    return [frozenset(s) for s in WORKED_EXAMPLE for _ in range(int(copies))]


def format_label_sets(label_sets: list[frozenset[int]]) -> str:
    """The typed form :func:`parse_label_sets` reads: one set per line, runs of copies as ``x3``."""
    lines: list[str] = []
    i = 0
    while i < len(label_sets):
        j = i
        while j < len(label_sets) and label_sets[j] == label_sets[i]:
            j += 1
        text = ",".join(str(c) for c in sorted(label_sets[i])) or "-"
        lines.append(text if j - i == 1 else f"{text} x{j - i}")
        i = j
    return "\n".join(lines)


def parse_label_sets(text: str) -> list[frozenset[int]]:
    """Label sets typed one per line, like ``0,1,2``; ``0,1 x3`` repeats a set three times.

    Labels are integers 0..MAX_LABEL, separated by commas or spaces, optionally in braces; ``-``,
    ``{}`` or ``∅`` is an empty set (an item that is only ever a negative). Blank lines are skipped.

    Raises:
        ValueError: naming the first bad line, or if there are fewer than 2 or more than MAX_ITEMS
            items, or no item has labels.
    """
    if not isinstance(text, str):
        raise ValueError(f"label sets must be text, got {type(text).__name__}")
    sets: list[frozenset[int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.match(line)
        body = match.group("set").strip() if match else None
        if body in EMPTY_SET or body == "":
            labels: frozenset[int] = frozenset()
        elif body is not None and re.fullmatch(r"\d+(\s*[, ]\s*\d+)*", body):
            labels = frozenset(int(t) for t in re.split(r"[,\s]+", body))
        else:
            raise ValueError(
                f"label sets, line {number}: {line!r} is not a label set like 0,1,2 "
                f"(integers 0–{MAX_LABEL}, '-' for none, 'x3' after a set for three copies)"
            )
        if max(labels, default=0) > MAX_LABEL:
            raise ValueError(
                f"label sets, line {number}: {line!r} uses label {max(labels)}; "
                f"labels go from 0 to {MAX_LABEL}"
            )
        copies = int(match.group("copies") or 1)
        if copies < 1:
            raise ValueError(f"label sets, line {number}: {line!r} asks for 0 copies")
        sets.extend([labels] * copies)
        if len(sets) > MAX_ITEMS:
            raise ValueError(
                f"label sets: more than {MAX_ITEMS} items (line {number}); use fewer or fewer copies"
            )
    if len(sets) < 2:
        raise ValueError(f"label sets: need at least 2 items to contrast, got {len(sets)}")
    if not any(sets):
        raise ValueError("label sets: every item is empty; give some items labels")
    return sets


def label_matrix(label_sets: list[frozenset[int]]) -> np.ndarray:
    """(n, C) multi-hot matrix, C = the largest label + 1."""
    classes = max((max(s) for s in label_sets if s), default=0) + 1
    labels = np.zeros((len(label_sets), classes), dtype=np.float64)
    for i, s in enumerate(label_sets):
        labels[i, sorted(s)] = 1.0
    return labels


def start_positions(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) seeded unit vectors, uniform on the sphere: where every loss starts."""
    generator = torch.Generator().manual_seed(int(seed))
    points = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    return torch.nn.functional.normalize(points, dim=1).numpy()


def simulate(
    label_sets: list[frozenset[int]],
    loss: str = "sdl",
    anchor: int = 0,
    steps: int = 100,
    temperature: float = 0.3,
    lr: float = 0.05,
    seed: int = 0,
) -> PlaygroundRun:
    """Train free 3-D unit vectors for ``label_sets`` with the named loss, recording every step.

    Adam moves the raw vectors; the loss normalises them, and frames hold the normalised ones.
    float64 throughout, so a seed gives the same frames on every machine.

    Args:
        label_sets: the items, e.g. from :func:`parse_label_sets` or :func:`worked_example`.
        loss: a multi-label loss name (one of PLAYGROUND_LOSSES).
        anchor: the item whose pulls are recorded; it must have labels.
        steps: optimisation steps, 1..MAX_STEPS.
        temperature: the loss's tau (> 0); on 3-D spheres 0.2-0.5 keeps the softmax from saturating.
        lr: Adam's learning rate (> 0).
        seed: seeds the start positions (:func:`start_positions`).

    Returns:
        A :class:`PlaygroundRun` with steps + 1 frames.

    Raises:
        ValueError: for an unknown or single-label loss, a bad anchor, steps, lr or temperature.
    """
    if loss not in PLAYGROUND_LOSSES:
        raise ValueError(f"loss must be one of {PLAYGROUND_LOSSES}, got {loss!r}")
    if not 2 <= len(label_sets) <= MAX_ITEMS:
        raise ValueError(f"label_sets must hold 2 to {MAX_ITEMS} items, got {len(label_sets)}")
    if (
        isinstance(steps, bool)
        or not isinstance(steps, int | np.integer)
        or not 1 <= steps <= MAX_STEPS
    ):
        raise ValueError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if isinstance(anchor, bool) or not isinstance(anchor, int | np.integer):
        raise ValueError(f"anchor must be an item index, got {anchor!r}")
    if not 0 <= anchor < len(label_sets):
        raise ValueError(f"anchor must be an item from 0 to {len(label_sets) - 1}, got {anchor}")
    if not label_sets[anchor]:
        raise ValueError(f"anchor {anchor} has no labels: an empty item is only ever a negative")
    if not float(lr) > 0 or not np.isfinite(lr):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    criterion = build_loss(loss, temperature=temperature)
    threads = torch.get_num_threads()
    # Tensors of a few dozen rows: one thread is ~10x faster than several fighting over the cores.
    torch.set_num_threads(1)
    try:
        return _train(criterion, loss, label_sets, anchor, steps, lr, seed)
    finally:
        torch.set_num_threads(threads)


def _train(
    criterion, loss: str, label_sets, anchor: int, steps: int, lr: float, seed: int
) -> PlaygroundRun:
    sets = tuple(frozenset(int(c) for c in s) for s in label_sets)
    labels = torch.from_numpy(label_matrix(list(sets)))
    raw = torch.from_numpy(start_positions(len(sets), seed)).requires_grad_(True)
    # Adam written out: torch.optim's first step imports torch._dynamo, seconds on a cold process.
    first, second = torch.zeros_like(raw), torch.zeros_like(raw)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    frames, pulls, losses = [], [], []
    # The registry's common scale (1 for an identical set), as the Relations page shows them.
    weights = criterion.comparable_weights(labels)[anchor].numpy().copy()
    for step in range(steps + 1):
        out = criterion.forward_detailed(raw, labels, keep_log_prob=True)
        frames.append(torch.nn.functional.normalize(raw.detach(), dim=1).numpy().copy())
        pulls.append(out.logit_gradient()[anchor].detach().numpy().copy())
        losses.append(float(out.loss.detach()))
        if step == steps:
            break  # the last frame is recorded after the last update
        (grad,) = torch.autograd.grad(out.loss, raw)
        with torch.no_grad():
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            t = step + 1
            denom = (second / (1 - beta2**t)).sqrt_().add_(eps)
            raw.sub_(lr * (first / (1 - beta1**t)) / denom)
    relations = relation_matrix(labels)[anchor].numpy()
    return PlaygroundRun(
        loss=loss,
        label_sets=sets,
        labels=labels.numpy(),
        anchor=int(anchor),
        relations=relations,
        weights=weights,
        frames=np.stack(frames),
        pulls=np.stack(pulls),
        losses=np.array(losses),
    )


def compare(
    label_sets: list[frozenset[int]],
    losses: tuple[str, ...] = ("sdl", "mulsupcon"),
    **options,
) -> dict[str, PlaygroundRun]:
    """:func:`simulate` each loss from the same start positions; keyword options go to each run."""
    if len(losses) == 0:
        raise ValueError("losses must name at least one loss")
    return {name: simulate(label_sets, name, **options) for name in losses}


def relation_cosines(run: PlaygroundRun, frame: int = -1) -> dict[Relation, float]:
    """Mean cosine with the anchor of the items in each relation at ``frame``, the anchor left out."""
    cos = run.cosines(frame)
    others = np.arange(len(cos)) != run.anchor
    return {
        r: float(cos[others & (run.relations == int(r))].mean())
        for r in Relation
        if bool((others & (run.relations == int(r))).any())
    }


def anchor_map(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Lambert azimuthal equal-area map of unit vectors around ``centre``: (..., 3) -> (..., 2).

    A point's distance from the map's centre is its chord distance to ``centre`` (2 sin(angle/2),
    0 to 2), so distance to the anchor reads straight off the map. The sphere is turned by the
    smallest rotation that takes ``centre`` to the pole, so the map changes smoothly as it moves.
    """
    c = np.asarray(centre, dtype=np.float64)
    c = c / np.linalg.norm(c)
    pole = np.array([0.0, 0.0, 1.0])
    axis = np.cross(c, pole)
    sin, cos = np.linalg.norm(axis), float(c @ pole)
    if sin < 1e-12:
        rotation = np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    else:
        k = axis / sin
        cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rotation = np.eye(3) + sin * cross + (1 - cos) * cross @ cross  # Rodrigues
    turned = np.asarray(points, dtype=np.float64) @ rotation.T
    z = np.clip(turned[..., 2], -1.0, 1.0)
    scale = np.sqrt(2.0 / np.maximum(1.0 + z, 1e-12))
    return turned[..., :2] * scale[..., None]
