"""``digits-mosaic``: 2x2 mosaics (16x16) of scikit-learn's bundled 8x8 digits; small, for tests."""

from __future__ import annotations

import numpy as np

from sdl.data.base import DatasetSplits
from sdl.data.mosaic import pooled_digit_mosaics, resolve_structure

DESCRIPTION = "2x2 mosaics (16x16) of scikit-learn's 1,797 8x8 digits; label set = digits tiled"


def missing(root: str | None = None) -> str | None:
    """scikit-learn ships the digits, so they are always here."""
    return None


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) uint8 digits (0..16 intensities scaled to 0..255) and (1797,) int64 classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target.astype(np.int64)


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    n_train: int = 1000,
    n_test: int = 250,
    preset: str = "default",
    grid: int | None = None,
    empty_prob: float | None = None,
    repeat_prob: float | None = None,
    test_fraction: float = 0.25,
) -> DatasetSplits:
    """Mosaics of sklearn digits; test mosaics use a disjoint pool (``test_fraction``) of the digits.

    Args:
        seed: fixes the pool split and the mosaics.
        root: unused (the digits ship with scikit-learn).
        n_train, n_test: number of mosaics in each split.
        preset: named settings of grid, empty_prob and repeat_prob (``sdl.data.mosaic.PRESETS``:
            "default", "nested"); the three options below override it when given.
        grid: cells per side (None: the preset's, 2).
        empty_prob: probability that a cell is blank (None: the preset's, 0.25 by default).
        repeat_prob: chance of repeating an earlier mosaic's label set with one label added or
            removed (None: the preset's, 0 by default).
        test_fraction: share of the 1,797 source digits kept for test mosaics.
    """
    images, classes = read_digits()
    return pooled_digit_mosaics(
        "digits-mosaic",
        images,
        classes,
        n_train,
        n_test,
        {**resolve_structure(preset, grid, empty_prob, repeat_prob), "preset": preset},
        test_fraction,
        seed,
        DESCRIPTION,
    )
