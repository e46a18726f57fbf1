"""Multi-label images from single-label ones: a grid of random items, some cells empty.

The label set of a mosaic is the set of classes tiled into it. Three knobs shape the label sets:

* ``grid``: the mosaic is ``grid`` x ``grid`` cells (default 2), so it holds at most ``grid**2``
  classes.
* ``empty_prob``: each cell is blank with this probability, independently. A mosaic whose cells all
  came out blank has its blank pattern redrawn (so the distribution is the conditional one); after
  ``MAX_REDRAWS`` rounds the few still blank get one random cell filled, so a chance near 1 gives
  one item per mosaic instead of a loop that never ends. Every mosaic has a non-empty label set:
  an empty set has no positives under any supervised contrastive loss, so it would only add noise.
  With 10 classes and the default 0.25 a 2x2 mosaic has about 2.7 labels.
* ``repeat_prob``: with this chance a mosaic takes the label set of an earlier mosaic (uniformly
  chosen) with one label added or removed, tiles each of those classes into one cell and fills the
  other cells with blanks (``empty_prob``) or more items of the same classes. Label sets then come in
  families a label apart, so R4/R5 pairs (one set inside the other) are more common in a batch;
  random tiling alone makes most overlapping pairs R3.

``PRESETS`` name settings of the three: ``default`` (2x2, 0.25, no repeats) and ``nested`` (see
below); an option given explicitly overrides the preset's value.

Test mosaics are tiled from a pool of source items disjoint from the training pool, so a test image
never reuses a training digit.
"""

from __future__ import annotations

import numpy as np

from sdl.data._files import split_indices
from sdl.data.base import DatasetSplits, MultiLabelData

GRID = 2
MAX_REDRAWS = 32
# The nested preset: a 3x3 grid mostly blank, so label sets range from 1 to 5 classes, and most
# label sets one edit away from an earlier one. Measured on mnist-mosaic, batches of 128: R4 and R5
# each ~10% of the pairs against ~3.6% by default (table in the README's Datasets section).
PRESETS: dict[str, dict[str, float | int]] = {
    "default": {"grid": GRID, "empty_prob": 0.25, "repeat_prob": 0.0},
    "nested": {"grid": 3, "empty_prob": 0.8, "repeat_prob": 0.9},
}


def resolve_structure(
    preset: str, grid: int | None, empty_prob: float | None, repeat_prob: float | None
) -> dict[str, float | int]:
    """The preset's grid, empty_prob and repeat_prob, with every option not None taking precedence.

    Raises:
        ValueError: unknown preset, or an out-of-range value (naming the option).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown mosaic preset={preset!r}; expected one of {sorted(PRESETS)}")
    given = {"grid": grid, "empty_prob": empty_prob, "repeat_prob": repeat_prob}
    resolved = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
    check_structure(**resolved)
    return resolved


def check_structure(grid: object, empty_prob: object, repeat_prob: object) -> None:
    """ValueError naming the option unless grid >= 1 is an int and both chances are in range."""
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    for name, value, high in (("empty_prob", empty_prob, "1)"), ("repeat_prob", repeat_prob, "1]")):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise ValueError(f"{name} must be a number in [0, {high}, got {value!r}")
    if not 0.0 <= empty_prob < 1.0:
        raise ValueError(f"empty_prob must be in [0, 1), got {empty_prob}")
    if not 0.0 <= repeat_prob <= 1.0:
        raise ValueError(f"repeat_prob must be in [0, 1], got {repeat_prob}")


def tile_mosaics(
    images: np.ndarray,
    classes: np.ndarray,
    num_classes: int,
    n: int,
    rng: np.random.Generator,
    empty_prob: float = 0.25,
    grid: int = GRID,
    repeat_prob: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile ``n`` ``grid`` x ``grid`` mosaics from a pool of single-label items.

    Args:
        images: (P, h, w) uint8 pool of source items.
        classes: (P,) int class of each source item.
        num_classes: C.
        n: number of mosaics.
        rng: numpy generator (the only source of randomness).
        empty_prob: probability that a cell is left blank.
        grid: cells per side.
        repeat_prob: chance that a mosaic repeats an earlier one's label set with one label added
            or removed (see the module docstring).

    Returns:
        mosaics (n, grid*h, grid*w) uint8, labels (n, C) uint8, cells (n, grid*grid) int64: the pool
        index tiled into each cell in row-major order, -1 if blank.

    Raises:
        ValueError: an option out of range, or n < 1.
    """
    check_structure(grid, empty_prob, repeat_prob)
    if n < 1:
        raise ValueError(f"the number of mosaics must be positive, got {n}")
    pool, h, w = images.shape
    k = grid * grid
    cells = rng.integers(0, pool, size=(n, k))  # (n, k) pool index per cell
    blank = rng.random((n, k)) < empty_prob  # (n, k)
    for _ in range(MAX_REDRAWS):  # redraw the blank pattern of all-blank mosaics (rare by default)
        all_blank = blank.all(axis=1)
        if not all_blank.any():
            break
        blank[all_blank] = rng.random((int(all_blank.sum()), k)) < empty_prob
    still = np.flatnonzero(blank.all(axis=1))
    if len(still):  # only for empty_prob near 1: give each one random non-blank cell
        blank[still, rng.integers(0, k, size=len(still))] = False
    cells = np.where(blank, -1, cells)
    if repeat_prob > 0:
        _repeat_label_sets(cells, classes, rng, empty_prob, repeat_prob)

    blank = cells < 0
    tiles = images[np.maximum(cells, 0)]  # (n, k, h, w)
    tiles[blank] = 0
    mosaics = (
        tiles.reshape(n, grid, grid, h, w).transpose(0, 1, 3, 2, 4).reshape(n, grid * h, grid * w)
    )
    labels = np.zeros((n, num_classes), dtype=np.uint8)
    rows, cols = np.nonzero(~blank)
    labels[rows, classes[cells[rows, cols]]] = 1
    return np.ascontiguousarray(mosaics), labels, cells.astype(np.int64)


def _repeat_label_sets(
    cells: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    empty_prob: float,
    repeat_prob: float,
) -> None:
    """Rewrite, in place and in order, the cells of the mosaics chosen to repeat an earlier set."""
    n, k = cells.shape
    present = np.unique(classes)
    by_class = {int(c): np.flatnonzero(classes == c) for c in present}
    repeat = rng.random(n) < repeat_prob
    repeat[0] = False  # the first mosaic has nothing earlier to repeat
    for i in np.flatnonzero(repeat):
        earlier = cells[rng.integers(0, i)]
        label_set = sorted({int(classes[c]) for c in earlier if c >= 0})
        addable = np.setdiff1d(present, label_set)
        edits = (["add"] if len(label_set) < k and len(addable) else []) + (
            ["remove"] if len(label_set) > 1 else []
        )
        if not edits:  # a single class that fills every cell: nothing to add or remove
            continue
        if edits[rng.integers(0, len(edits))] == "add":
            label_set.append(int(addable[rng.integers(0, len(addable))]))
        else:
            label_set.pop(int(rng.integers(0, len(label_set))))
        # each class once, the other cells blank or more items of the same classes
        extra = [
            -1 if rng.random() < empty_prob else label_set[rng.integers(0, len(label_set))]
            for _ in range(k - len(label_set))
        ]
        layout = rng.permutation(np.array(label_set + extra))  # class per cell, -1 blank
        cells[i] = [
            -1 if c < 0 else by_class[int(c)][rng.integers(0, len(by_class[int(c)]))]
            for c in layout
        ]


def mosaic_splits(
    name: str,
    train_pool: tuple[np.ndarray, np.ndarray],
    test_pool: tuple[np.ndarray, np.ndarray],
    label_names: list[str],
    n_train: int,
    n_test: int,
    structure: dict,
    seed: int,
    description: str,
    source_index: tuple[np.ndarray, np.ndarray] | None = None,
) -> DatasetSplits:
    """Train and test mosaics from two disjoint pools of (images uint8 (P, h, w), classes (P,)).

    ``structure`` is what :func:`resolve_structure` returns (grid, empty_prob, repeat_prob), plus
    optionally ``preset``, the name it came from. ``info`` keeps these, the cells of every mosaic
    (``train_cells``, ``test_cells``: indices into the pools, -1 for blank) and, when given, where
    each pool item sits in the source (``train_source``, ``test_source``), so a mosaic can be traced
    back to its source items.
    """
    rng = np.random.default_rng([seed, 1])  # a stream apart from the pool split's
    splits = {}
    cells = {}
    offset = 0
    for split, (images, classes), n in (
        ("train", train_pool, n_train),
        ("test", test_pool, n_test),
    ):
        mosaics, labels, cells[split] = tile_mosaics(
            images,
            classes,
            len(label_names),
            n,
            rng,
            structure["empty_prob"],
            structure["grid"],
            structure["repeat_prob"],
        )
        splits[split] = MultiLabelData(
            inputs=(mosaics[:, None].astype(np.float32) / 255.0),
            labels=labels,
            ids=np.arange(offset, offset + n, dtype=np.int64),
            label_names=list(label_names),
            kind="image",
            thumbs=mosaics,
        )
        offset += n
    return DatasetSplits(
        name=name,
        train=splits["train"],
        test=splits["test"],
        description=description,
        info={
            "seed": seed,
            **structure,
            "train_pool_size": len(train_pool[0]),
            "test_pool_size": len(test_pool[0]),
            "train_cells": cells["train"],
            "test_cells": cells["test"],
            "train_source": None if source_index is None else source_index[0],
            "test_source": None if source_index is None else source_index[1],
        },
    )


def pool_split(
    images: np.ndarray, classes: np.ndarray, test_fraction: float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """Split source items into disjoint train/test pools (seeded); also returns the source indices."""
    train_idx, test_idx = split_indices(len(images), test_fraction, seed)
    return (
        (images[train_idx], classes[train_idx]),
        (images[test_idx], classes[test_idx]),
        train_idx,
        test_idx,
    )


def pooled_digit_mosaics(
    name: str,
    images: np.ndarray,
    classes: np.ndarray,
    n_train: int,
    n_test: int,
    structure: dict,
    test_fraction: float,
    seed: int,
    description: str,
) -> DatasetSplits:
    """Digit mosaics whose test mosaics tile only digits held out of the training pool."""
    train_pool, test_pool, train_idx, test_idx = pool_split(images, classes, test_fraction, seed)
    return mosaic_splits(
        name,
        train_pool,
        test_pool,
        [str(d) for d in range(10)],
        n_train,
        n_test,
        structure,
        seed,
        description,
        source_index=(train_idx, test_idx),
    )
