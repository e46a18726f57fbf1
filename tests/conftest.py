"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest


def _tricky_labels(seed: int = 0, extra_rows: int = 4, classes: int = 6) -> np.ndarray:
    """A (B, C) 0/1 matrix with every relation in it: empty rows, identical rows, a subset, a
    superset, a partial overlap, a disjoint row, a single label, then random rows."""
    sets = [
        set(),
        set(),
        {0, 1, 2},
        {0, 1, 2},
        {0, 1},
        {0, 1, 2, 3},
        {0, 3},
        {3, 4},
        {2},
    ]
    rng = np.random.default_rng(seed)
    rows = np.zeros((len(sets) + extra_rows, classes), dtype=np.int64)
    for i, s in enumerate(sets):
        rows[i, sorted(s)] = 1
    rows[len(sets) :] = rng.random((extra_rows, classes)) < 0.4
    return rows[rng.permutation(len(rows))]


@pytest.fixture
def tricky_labels():
    """Factory: ``tricky_labels(seed, extra_rows=4, classes=6)`` -> (B, C) int numpy array."""
    return _tricky_labels
