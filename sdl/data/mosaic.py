"""Multi-label images from single-label ones: a 2x2 mosaic of random items, some cells empty.

The label set of a mosaic is the set of classes tiled into it. Each cell is empty with probability
``empty_prob``, independently; a mosaic whose four cells all came out empty is redrawn, so every
mosaic holds at least one item and a non-empty label set (an empty label set has no positives under
any supervised contrastive loss, so it would only add noise). With 10 classes and the default
``empty_prob=0.25`` a mosaic has about 2.7 labels.

Test mosaics are tiled from a pool of source items disjoint from the training pool, so a test image
never reuses a training digit.
"""

from __future__ import annotations

import numpy as np

from sdl.data._files import split_indices
from sdl.data.base import DatasetSplits, MultiLabelData

GRID = 2


def tile_mosaics(
    images: np.ndarray,
    classes: np.ndarray,
    num_classes: int,
    n: int,
    rng: np.random.Generator,
    empty_prob: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile ``n`` 2x2 mosaics from a pool of single-label items.

    Args:
        images: (P, h, w) uint8 pool of source items.
        classes: (P,) int class of each source item.
        num_classes: C.
        n: number of mosaics.
        rng: numpy generator (the only source of randomness).
        empty_prob: probability that a cell is left blank.

    Returns:
        mosaics (n, 2h, 2w) uint8, labels (n, C) uint8, cells (n, 4) int64: the pool index tiled
        into each cell in row-major order (top-left, top-right, bottom-left, bottom-right), -1 if blank.
    """
    if not 0.0 <= empty_prob < 1.0:
        raise ValueError(f"empty_prob must be in [0, 1), got {empty_prob}")
    if n < 1:
        raise ValueError(f"the number of mosaics must be positive, got {n}")
    pool, h, w = images.shape
    cells = rng.integers(0, pool, size=(n, GRID * GRID))  # (n, 4) pool index per cell
    blank = rng.random((n, GRID * GRID)) < empty_prob  # (n, 4)
    while True:  # redraw the blank pattern of all-blank mosaics (rare: empty_prob ** 4)
        all_blank = blank.all(axis=1)
        if not all_blank.any():
            break
        blank[all_blank] = rng.random((int(all_blank.sum()), GRID * GRID)) < empty_prob
    cells = np.where(blank, -1, cells)

    tiles = images[np.maximum(cells, 0)]  # (n, 4, h, w)
    tiles[blank] = 0
    mosaics = (
        tiles.reshape(n, GRID, GRID, h, w).transpose(0, 1, 3, 2, 4).reshape(n, GRID * h, GRID * w)
    )
    labels = np.zeros((n, num_classes), dtype=np.uint8)
    rows, cols = np.nonzero(~blank)
    labels[rows, classes[cells[rows, cols]]] = 1
    return np.ascontiguousarray(mosaics), labels, cells.astype(np.int64)


def mosaic_splits(
    name: str,
    train_pool: tuple[np.ndarray, np.ndarray],
    test_pool: tuple[np.ndarray, np.ndarray],
    label_names: list[str],
    n_train: int,
    n_test: int,
    empty_prob: float,
    seed: int,
    description: str,
    source_index: tuple[np.ndarray, np.ndarray] | None = None,
) -> DatasetSplits:
    """Train and test mosaics from two disjoint pools of (images uint8 (P, h, w), classes (P,)).

    ``info`` keeps the cells of every mosaic (``train_cells``, ``test_cells``: indices into the
    pools, -1 for blank) and, when given, where each pool item sits in the source
    (``train_source``, ``test_source``), so a mosaic can be traced back to its source items.
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
            images, classes, len(label_names), n, rng, empty_prob
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
            "empty_prob": empty_prob,
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
    empty_prob: float,
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
        empty_prob,
        seed,
        description,
        source_index=(train_idx, test_idx),
    )
